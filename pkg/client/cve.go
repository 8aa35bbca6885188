package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// CVE returns the fleet's exposure to the CVE id and the playbook per
// kernel line.
func (c *Client) CVE(ctx context.Context, id string) (*wire.CVEReport, error) {
	var rep wire.CVEReport
	if err := c.do(ctx, http.MethodGet, wire.PathCVE+url.PathEscape(id), nil, nil, nil, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}
