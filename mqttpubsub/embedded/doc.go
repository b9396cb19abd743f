// Package embedded runs an MQTT 3.1.1/5 broker inside the process, built on
// github.com/mochi-mqtt/server/v2. It is the broker of the embedded default
// setup, of `switchyard broker` and of tests.
//
// # Durability
//
// By default the broker keeps its state in a data directory
// (Config.DataDir, default DefaultDataDir(): os.UserCacheDir()/switchyard/broker):
// sessions, subscriptions and retained messages through mochi's pebble
// storage hook (DataDir/sessions), and every QoS 1/2 message that a session
// has not acknowledged yet in a queue store (DataDir/queues, also pebble).
// A broker that restarts on the same directory carries on where it stopped:
// persistent sessions resume and get the messages they had not
// acknowledged (some possibly twice: delivery is at least once). A message
// is written before its publisher gets the PUBACK, so it survives a crash
// or kill of the broker process; with Config.SyncWrites it is also on disk
// (fsync) and survives a crash of the machine. One broker at a time may use
// a directory; a second gets ErrDataDirLocked. Config.InMemory keeps
// everything in memory instead: nothing survives a restart.
//
// # Queues and limits
//
// Every session that should get a QoS 1/2 message gets it in its own queue
// (a shared subscription, $share/group/filter, has one queue that its
// members take turns to drain). A connected client is handed at most
// Config.MaxInflight messages it has not acknowledged (its MQTT 5 Receive
// Maximum when smaller); the rest wait in the queue, on disk, however many
// there are up to the session limits. A message leaves its queue when the
// client acknowledges it (PUBACK, or PUBREC for QoS 2); when the client goes
// away first, it goes back to the front of the queue.
//
// A queue holds at most Config.MaxSessionMessages messages and
// Config.MaxSessionBytes bytes. A publish that would take any receiving
// queue past a limit is refused as a whole and stored nowhere, and its
// publisher is told: an MQTT 5 publisher gets a PUBACK with reason code
// 0x97 (quota exceeded); an MQTT 3.1.1 publisher, whose protocol has no
// failure PUBACK, gets no PUBACK, so its send times out. A publisher is
// never told that a message was accepted that is then dropped.
//
// QoS 0 messages are delivered at most once, from memory, as before.
//
// # Log
//
// Warnings and errors are rate limited: at most one line per event and
// client per Config.WarnEvery (one minute by default), carrying "events",
// the number of such events since the previous line.
//
// # Users
//
// Without a users file every client may connect anonymously; with one,
// only the users it lists, with their passwords.
//
// The users file has one user per line, "name:password" (the password is
// everything after the first colon). Blank lines and lines starting with '#'
// are ignored. Passwords are stored in clear, so keep the file private
// (mode 0600).
package embedded
