module goro.bench/workloads

go 1.19
