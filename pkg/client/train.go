package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// Trains lists the release trains.
func (c *Client) Trains(ctx context.Context) ([]wire.Train, error) {
	var out []wire.Train
	err := c.do(ctx, http.MethodGet, wire.PathTrains, nil, nil, nil, &out)
	return out, err
}

// Train returns the release train of line.
func (c *Client) Train(ctx context.Context, line string) (*wire.Train, error) {
	var out wire.Train
	if err := c.do(ctx, http.MethodGet, wire.PathTrain+url.PathEscape(line), nil, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetTrain sets the release train of line.
func (c *Client) SetTrain(ctx context.Context, line string, req wire.TrainSetRequest) (*wire.Train, error) {
	var out wire.Train
	if err := c.do(ctx, http.MethodPut, wire.PathTrain+url.PathEscape(line), nil, nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// TrainAction holds, resumes or skips the next departure of the train of
// line (action "hold", "resume" or "skip").
func (c *Client) TrainAction(ctx context.Context, line, action, reason string) (*wire.Train, error) {
	var out wire.Train
	if err := c.do(ctx, http.MethodPost, wire.PathTrain+url.PathEscape(line)+"/"+action, nil, nil, wire.TrainActionRequest{Reason: reason}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ExpediteTrain departs a validated release of line now.
func (c *Client) ExpediteTrain(ctx context.Context, line string, req wire.TrainExpediteRequest) (*wire.Train, error) {
	var out wire.Train
	if err := c.do(ctx, http.MethodPost, wire.PathTrain+url.PathEscape(line)+"/expedite", nil, nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RejectRelease rejects a release for its line.
func (c *Client) RejectRelease(ctx context.Context, id, reason string) error {
	return c.do(ctx, http.MethodPost, wire.PathReleases+"/"+url.PathEscape(id)+wire.PathReleaseReject, nil, nil, wire.ReleaseRejectRequest{Reason: reason}, nil)
}
