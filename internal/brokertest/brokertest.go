// Package brokertest tells tests where the real brokers started by
// scripts/test.sh are, and makes a missing broker a failure rather than a
// skip when the tests run under `make test`.
//
// The environment it reads:
//
//	SWITCHYARD_REQUIRE_BROKERS=1   set by `make test`: a missing broker fails the test
//	SWITCHYARD_PULSAR_URL          e.g. pulsar://127.0.0.1:6650
//	SWITCHYARD_PULSAR_ADMIN_URL    e.g. http://127.0.0.1:8080
//	SWITCHYARD_PULSAR_RESTART      shell command that restarts the Pulsar broker
//	SWITCHYARD_PULSAR_TOKEN        a token the broker accepts (it also lets tokenless clients in)
//	SWITCHYARD_MQTT_ADDR           host:port of the anonymous Mosquitto listener
//	SWITCHYARD_MQTT_AUTH_ADDR      host:port of the password Mosquitto listener
//	SWITCHYARD_MQTT_USER, SWITCHYARD_MQTT_PASSWORD   credentials for that listener
//	SWITCHYARD_MQTT_RESTART        shell command that restarts Mosquitto
package brokertest

import (
	"os"
	"testing"
)

// Required reports whether a missing broker must fail the test.
func Required() bool { return os.Getenv("SWITCHYARD_REQUIRE_BROKERS") == "1" }

// Env returns the value of the environment variable name. When it is empty the
// test is failed under `make test` and skipped otherwise, with a message that
// says how to provide it.
func Env(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v != "" {
		return v
	}
	msg := name + " is not set; run the tests with `make test`, which starts the brokers and sets it"
	if Required() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
