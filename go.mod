module github.com/switchyard-mq/switchyard

go 1.26
