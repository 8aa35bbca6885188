package policy

// socketFamilies lists the Linux address families by number, as defined in
// include/linux/socket.h (AF_UNSPEC = 0 through AF_MCTP = 45). It is
// never modified.
var socketFamilies = [...]string{
	0:  "AF_UNSPEC",
	1:  "AF_UNIX",
	2:  "AF_INET",
	3:  "AF_AX25",
	4:  "AF_IPX",
	5:  "AF_APPLETALK",
	6:  "AF_NETROM",
	7:  "AF_BRIDGE",
	8:  "AF_ATMPVC",
	9:  "AF_X25",
	10: "AF_INET6",
	11: "AF_ROSE",
	12: "AF_DECnet",
	13: "AF_NETBEUI",
	14: "AF_SECURITY",
	15: "AF_KEY",
	16: "AF_NETLINK",
	17: "AF_PACKET",
	18: "AF_ASH",
	19: "AF_ECONET",
	20: "AF_ATMSVC",
	21: "AF_RDS",
	22: "AF_SNA",
	23: "AF_IRDA",
	24: "AF_PPPOX",
	25: "AF_WANPIPE",
	26: "AF_LLC",
	27: "AF_IB",
	28: "AF_MPLS",
	29: "AF_CAN",
	30: "AF_TIPC",
	31: "AF_BLUETOOTH",
	32: "AF_IUCV",
	33: "AF_RXRPC",
	34: "AF_ISDN",
	35: "AF_PHONET",
	36: "AF_IEEE802154",
	37: "AF_CAIF",
	38: "AF_ALG",
	39: "AF_NFC",
	40: "AF_VSOCK",
	41: "AF_KCM",
	42: "AF_QIPCRTR",
	43: "AF_SMC",
	44: "AF_XDP",
	45: "AF_MCTP",
}

// SocketFamily returns the Linux number of the address family with the
// given symbolic name, e.g. 38 for "AF_ALG". Names are case-sensitive as in
// the kernel headers ("AF_DECnet"); the aliases AF_LOCAL, AF_FILE and
// AF_ROUTE are understood. ok is false for unknown names.
func SocketFamily(name string) (number int, ok bool) {
	for i, n := range socketFamilies {
		if n == name {
			return i, true
		}
	}
	// Other names Linux (or glibc) defines for some families.
	switch name {
	case "AF_LOCAL", "AF_FILE":
		return 1, true // AF_UNIX
	case "AF_ROUTE":
		return 16, true // AF_NETLINK
	}
	return 0, false
}

// SocketFamilyName returns the primary symbolic name of a Linux address
// family number, e.g. "AF_ALG" for 38, or "" if the number is unknown.
func SocketFamilyName(number int) string {
	if number < 0 || number >= len(socketFamilies) {
		return ""
	}
	return socketFamilies[number]
}
