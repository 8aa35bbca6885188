{{- /* One line per third-party library for notices.sh: name, version, SPDX licence name, licence file (tab-separated). */ -}}
{{range .}}{{.Name}}	{{.Version}}	{{.LicenseName}}	{{.LicensePath}}
{{end}}
