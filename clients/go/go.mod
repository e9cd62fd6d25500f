module github.com/chargewire/chargewire/clients/go

go 1.22
