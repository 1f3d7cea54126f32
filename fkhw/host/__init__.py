"""What the machine gives a run: its cores and memory (how many local
workers and how large a sample fit), the declared user cache for what can be
rebuilt (Verilator builds, Yosys runs, extracted models), and the child
processes a command starts, all of which end with it (Ctrl-C, SIGTERM or a
normal exit)."""
