module github.com/chargewire/chargewire/bench/loadpeers

go 1.22

require github.com/chargewire/chargewire/clients/go v0.1.0

replace github.com/chargewire/chargewire/clients/go => ../../clients/go
