package rabbitmqpubsub

import (
	"strconv"
	"strings"
	"testing"
)

func TestAckWindowConfig(t *testing.T) {
	var c SubscriberConfig
	c.setDefaults()
	if c.AckWindow != 1 {
		t.Errorf("default AckWindow %d, want 1", c.AckWindow)
	}
	c.AckWindow = 64
	if err := c.Validate(); err != nil {
		t.Errorf("AckWindow 64: %v", err)
	}
	for _, bad := range []int{-1, maxPrefetch + 1} {
		c.AckWindow = bad
		err := c.Validate()
		if err == nil {
			t.Fatalf("AckWindow %d accepted", bad)
		}
		if msg := err.Error(); !strings.Contains(msg, "AckWindow") || !strings.Contains(msg, strconv.Itoa(bad)) || strings.Contains(msg, "\n") {
			t.Errorf("AckWindow %d: error %q does not name the field and the value on one line", bad, msg)
		}
	}
}
