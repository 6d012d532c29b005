module goro.examples

go 1.19
