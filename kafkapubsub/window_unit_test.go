package kafkapubsub

import "testing"

func TestAckWindowDefault(t *testing.T) {
	var c SubscriberConfig
	c.setDefaults()
	if c.AckWindow != 1 {
		t.Fatalf("default AckWindow %d, want 1", c.AckWindow)
	}
}
