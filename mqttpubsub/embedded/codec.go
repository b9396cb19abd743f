package embedded

import (
	"encoding/binary"
	"errors"

	"github.com/mochi-mqtt/server/v2/packets"
)

// storedMessage is a message waiting in a session queue.
type storedMessage struct {
	qos     byte  // QoS to deliver with (own queue) or that it was published with (shared queue)
	retain  bool  // deliver with the retain flag set
	created int64 // unix seconds
	topic   string
	origin  string
	ids     []int // subscription identifiers (own queue only)
	props   packets.Properties
	payload []byte
}

const (
	recordVersion = 1
	flagRetain    = 1 << 2
	flagProps     = 1 << 3
)

var errBadRecord = errors.New("malformed stored message")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func hasProps(p *packets.Properties) bool {
	return p.PayloadFormatFlag || p.MessageExpiryInterval > 0 || p.ContentType != "" || p.ResponseTopic != "" ||
		len(p.CorrelationData) > 0 || len(p.User) > 0
}

// encode appends the record of m to b.
func (m *storedMessage) encode(b []byte) []byte {
	flags := m.qos & 3
	if m.retain {
		flags |= flagRetain
	}
	props := hasProps(&m.props)
	if props {
		flags |= flagProps
	}
	b = append(b, recordVersion, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(m.created))
	b = appendString(b, m.topic)
	b = appendString(b, m.origin)
	b = binary.AppendUvarint(b, uint64(len(m.ids)))
	for _, id := range m.ids {
		b = binary.AppendUvarint(b, uint64(id))
	}
	if props {
		p := &m.props
		pf := byte(0)
		if p.PayloadFormatFlag {
			pf = 1
		}
		b = append(b, pf, p.PayloadFormat)
		b = binary.AppendUvarint(b, uint64(p.MessageExpiryInterval))
		b = appendString(b, p.ContentType)
		b = appendString(b, p.ResponseTopic)
		b = appendBytes(b, p.CorrelationData)
		b = binary.AppendUvarint(b, uint64(len(p.User)))
		for _, u := range p.User {
			b = appendString(b, u.Key)
			b = appendString(b, u.Val)
		}
	}
	return append(b, m.payload...)
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errBadRecord
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil || uint64(len(r.b)) < n {
		r.err = errBadRecord
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) < 1 {
		r.err = errBadRecord
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

// decodeMessage decodes a record made by encode. The result owns its memory.
func decodeMessage(rec []byte) (storedMessage, error) {
	var m storedMessage
	if len(rec) < 10 || rec[0] != recordVersion {
		return m, errBadRecord
	}
	flags := rec[1]
	m.qos = flags & 3
	m.retain = flags&flagRetain != 0
	m.created = int64(binary.BigEndian.Uint64(rec[2:10]))
	r := &reader{b: rec[10:]}
	m.topic = string(r.bytes())
	m.origin = string(r.bytes())
	if n := r.uvarint(); n > 0 && r.err == nil {
		if n > uint64(len(r.b)) {
			return m, errBadRecord
		}
		m.ids = make([]int, n)
		for i := range m.ids {
			m.ids[i] = int(r.uvarint())
		}
	}
	if flags&flagProps != 0 {
		p := &m.props
		p.PayloadFormatFlag = r.byte() == 1
		p.PayloadFormat = r.byte()
		p.MessageExpiryInterval = uint32(r.uvarint())
		p.ContentType = string(r.bytes())
		p.ResponseTopic = string(r.bytes())
		if c := r.bytes(); len(c) > 0 {
			p.CorrelationData = append([]byte(nil), c...)
		}
		n := r.uvarint()
		if n > uint64(len(r.b)) {
			return m, errBadRecord
		}
		for i := uint64(0); i < n && r.err == nil; i++ {
			p.User = append(p.User, packets.UserProperty{Key: string(r.bytes()), Val: string(r.bytes())})
		}
	}
	if r.err != nil {
		return m, r.err
	}
	m.payload = append([]byte(nil), r.b...)
	return m, nil
}
