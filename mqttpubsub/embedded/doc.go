// Package embedded runs an MQTT 3.1.1/5 broker inside the process, built on
// github.com/mochi-mqtt/server/v2. It is the broker of the embedded default
// setup, of `switchyard broker` and of tests.
//
// Sessions and messages live in memory only: they are lost when the broker
// stops. Without a users file every client may connect anonymously; with one,
// only the users it lists, with their passwords.
//
// The users file has one user per line, "name:password" (the password is
// everything after the first colon). Blank lines and lines starting with '#'
// are ignored. Passwords are stored in clear, so keep the file private
// (mode 0600).
package embedded
