"""What the project brings for itself on a bare machine: its own PostgreSQL and Redis,
the Procfile's processes started, killed and restarted by PID, and free ports. Used by
`make test`, `make bench`, `make demo`, the system and chaos tests and the benchmarks;
imported by no app."""
