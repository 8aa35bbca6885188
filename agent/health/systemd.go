package health

import (
	"context"
	"errors"
	"fmt"
	"os"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
)

// defaultSystemBus is the D-Bus system bus address used when
// DBUS_SYSTEM_BUS_ADDRESS is not set (as in godbus).
const defaultSystemBus = "unix:path=/var/run/dbus/system_bus_socket"

// dbusSystemd implements Systemd over the D-Bus system bus with one
// connection per call.
type dbusSystemd struct{}

// NewSystemd returns a Systemd that queries systemd over the D-Bus system
// bus (github.com/coreos/go-systemd/v22/dbus). The bus address is
// DBUS_SYSTEM_BUS_ADDRESS, or the standard system bus socket.
//
// NewSystemd connects once and reads SystemState to prove systemd answers,
// so it fails with a clear error when there is no system bus. The returned
// Systemd holds no connection: each method call opens its own connection
// and closes it before returning, so there is nothing to close. Health
// checks make few calls (SystemState about once a second while systemd
// settles, then one call per required unit), which keeps the cost of a
// connection per call negligible, and a long-lived agent never holds a
// connection that a restart of dbus-daemon would break.
func NewSystemd(ctx context.Context) (Systemd, error) {
	s := dbusSystemd{}
	if _, err := s.SystemState(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// systemBusAddress returns the address godbus dials for the system bus.
func systemBusAddress() string {
	if a := os.Getenv("DBUS_SYSTEM_BUS_ADDRESS"); a != "" {
		return a
	}
	return defaultSystemBus
}

// connect opens a connection to systemd on the system bus.
func (dbusSystemd) connect(ctx context.Context) (*sdbus.Conn, error) {
	conn, err := sdbus.NewSystemConnectionContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("health: connecting to systemd over the D-Bus system bus %s: %w", systemBusAddress(), err)
	}
	return conn, nil
}

// SystemState returns the systemd manager's SystemState property.
func (s dbusSystemd) SystemState(ctx context.Context) (string, error) {
	conn, err := s.connect(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	p, err := conn.SystemStateContext(ctx)
	if err != nil {
		return "", fmt.Errorf("health: reading systemd SystemState: %w", err)
	}
	state, ok := p.Value.Value().(string)
	if !ok {
		return "", errors.New("health: systemd SystemState is not a string: " + p.Value.String())
	}
	return state, nil
}

// UnitActiveState returns the ActiveState property of unit.
func (s dbusSystemd) UnitActiveState(ctx context.Context, unit string) (string, error) {
	conn, err := s.connect(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	p, err := conn.GetUnitPropertyContext(ctx, unit, "ActiveState")
	if err != nil {
		return "", fmt.Errorf("health: reading ActiveState of unit %s: %w", unit, err)
	}
	state, ok := p.Value.Value().(string)
	if !ok {
		return "", fmt.Errorf("health: ActiveState of unit %s is not a string: %s", unit, p.Value.String())
	}
	return state, nil
}
