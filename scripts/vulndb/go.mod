module github.com/resq-go/resq/scripts/vulndb

go 1.26
