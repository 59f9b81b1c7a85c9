# SPDX-License-Identifier: MIT
"""The comparison harness behind ./scripts/bench: one echo workload, measured against our
echo server on every backend, the models ladder, the peer libraries and the hand-written
references, with the load generator (reactor-load) on one CPU and the server on the other."""
