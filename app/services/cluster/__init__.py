"""Scale-out: gateways forward orders to sharded matchers over Redis Streams."""
