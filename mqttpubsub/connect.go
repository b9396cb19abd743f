package mqttpubsub

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// ErrConnect is wrapped by every error about connecting or logging in to the broker.
var ErrConnect = errors.New("cannot connect to the MQTT broker")

// clientOptions returns paho options for one connection of c (already
// resolved) with the given client id and session kind. Handlers are set by
// the caller.
func (c ConnectionConfig) clientOptions(clientID string, cleanSession bool) *mqtt.ClientOptions {
	o := mqtt.NewClientOptions()
	o.AddBroker(c.Broker)
	o.SetClientID(clientID)
	o.SetUsername(c.Username)
	o.SetPassword(c.Password)
	o.SetCleanSession(cleanSession)
	// MQTT 3.1.1 only: without this paho retries a refused login with MQTT
	// 3.1 and reports that attempt's error instead of the real one.
	o.SetProtocolVersion(4)
	o.SetConnectTimeout(c.ConnectTimeout)
	o.SetDialer(&net.Dialer{Timeout: c.ConnectTimeout})
	o.SetKeepAlive(c.KeepAlive)
	o.SetPingTimeout(c.ConnectTimeout)
	// Bounds writing one packet (a large payload on a slow link takes a while).
	o.SetWriteTimeout(max(c.ConnectTimeout, 30*time.Second))
	o.SetAutoReconnect(true)
	o.SetMaxReconnectInterval(c.MaxReconnectInterval)
	o.SetConnectRetry(false)
	o.SetResumeSubs(false)
	if c.TLSConfig != nil {
		o.SetTLSConfig(c.TLSConfig)
	}
	return o
}

// connect connects client and waits for the outcome, at most about twice the
// connect timeout (dialing and the MQTT handshake are bounded separately). It
// reports whether the broker still had a session for the client id.
func (c ConnectionConfig) connect(client mqtt.Client, clientID string) (sessionPresent bool, err error) {
	token := client.Connect()
	if !token.WaitTimeout(2*c.ConnectTimeout + time.Second) {
		client.Disconnect(0)
		return false, &ConnectError{Broker: c.Broker, ClientID: clientID, Reason: fmt.Sprintf("no answer within %s", 2*c.ConnectTimeout)}
	}
	if err := token.Error(); err != nil {
		return false, &ConnectError{Broker: c.Broker, ClientID: clientID, Reason: describeConnectError(err, c.Username), Err: err}
	}
	if ct, ok := token.(*mqtt.ConnectToken); ok {
		sessionPresent = ct.SessionPresent()
	}
	return sessionPresent, nil
}

// ConnectError says why connecting or logging in to the broker failed. It
// matches ErrConnect with errors.Is, and the paho error it was made from
// (for example packets.ErrorRefusedBadUsernameOrPassword). It never holds
// the password.
type ConnectError struct {
	Broker   string // the broker URL
	ClientID string // the client id of the connection
	Reason   string // what went wrong, one line
	Err      error  // the underlying error, if any
}

// Error implements error.
func (e *ConnectError) Error() string {
	return fmt.Sprintf("%s at %s as client %q: %s", ErrConnect, e.Broker, e.ClientID, e.Reason)
}

// Unwrap returns ErrConnect and the underlying error.
func (e *ConnectError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrConnect}
	}
	return []error{ErrConnect, e.Err}
}

// describeConnectError turns paho's connect errors into one clear line.
func describeConnectError(err error, username string) string {
	switch {
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword):
		if username == "" {
			return "the broker requires a user name and password"
		}
		return fmt.Sprintf("the broker rejected the user name %q or its password", username)
	case errors.Is(err, packets.ErrorRefusedNotAuthorised):
		if username == "" {
			return "the broker refused the anonymous login (not authorised); a user name and password may be required"
		}
		return fmt.Sprintf("the broker refused the login of user %q (not authorised: wrong password or no access)", username)
	case errors.Is(err, packets.ErrorRefusedIDRejected):
		return "the broker rejected the client id"
	case errors.Is(err, packets.ErrorRefusedServerUnavailable):
		return "the broker is unavailable"
	case errors.Is(err, packets.ErrorRefusedBadProtocolVersion):
		return "the broker does not speak MQTT 3.1.1"
	}
	// Network errors come as "network Error : <cause>".
	msg := err.Error()
	if i := strings.Index(msg, " : "); i >= 0 && strings.HasPrefix(strings.ToLower(msg), "network error") {
		msg = msg[i+3:]
	}
	return oneLine(msg)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// subackPacketIDInUse is the MQTT 5 reason code "packet identifier in use".
// Some brokers (mochi-mqtt) keep the packet ids of the messages they send to a
// client and of the requests they receive from it in one table, and refuse a
// SUBSCRIBE whose id equals that of a message still waiting for its ack. That
// only happens to a session that holds messages, which therefore exists
// together with its subscription.
const subackPacketIDInUse = 0x91

// subscribe subscribes client to filter and checks the broker's answer. With
// sessionExists, a refusal for a packet id in use counts as success.
func (c ConnectionConfig) subscribe(client mqtt.Client, filter string, qos byte, sessionExists bool) error {
	token := client.Subscribe(filter, qos, nil)
	if !token.WaitTimeout(c.ConnectTimeout) {
		return fmt.Errorf("mqtt: subscribing to %q: no answer from the broker within %s", filter, c.ConnectTimeout)
	}
	if err := token.Error(); err != nil {
		return fmt.Errorf("mqtt: subscribing to %q: %w", filter, err)
	}
	if st, ok := token.(*mqtt.SubscribeToken); ok {
		for _, code := range st.Result() {
			if code == subackPacketIDInUse && sessionExists {
				continue
			}
			if code > 2 {
				return fmt.Errorf("mqtt: the broker refused the subscription to %q (return code 0x%02x: not authorised or not supported)", filter, code)
			}
		}
	}
	return nil
}
