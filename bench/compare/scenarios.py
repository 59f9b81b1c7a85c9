# SPDX-License-Identifier: MIT
"""What is measured: the scenarios (a)-(f), the models ladder and the idle-memory probe."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Scenario:
    key: str            # "a".."f", "e5k", or "ladder-100"
    title: str          # for tables and plots
    mode: str = "pingpong"
    conns: int = 1
    idle: int = 0
    size: int = 64
    part: str = ""      # the --only name that selects it, if not its key ("e" for "e5k")

    def chosen_by(self, wanted):
        """Whether the --only filter `wanted` (a predicate on names) selects it."""
        return wanted(self.key) or (bool(self.part) and wanted(self.part))

    @property
    def descriptors(self):
        return self.conns + self.idle

    def load_args(self):
        return ["--mode", self.mode, "--conns", str(self.conns), "--idle", str(self.idle),
                "--size", str(self.size)]


SCENARIOS = [
    Scenario("a", "1 conn, 64 B", conns=1),
    Scenario("b", "100 conns, 64 B", conns=100),
    Scenario("c", "100 conns, 4 KiB", conns=100, size=4096),
    Scenario("d", "50 active + 5,000 idle", conns=50, idle=5000),
    Scenario("e", "1,000 conns, 64 B", conns=1000),
    Scenario("f", "connects/s (10 at once)", mode="connect", conns=10),
]

# (e) again at the counts where select's O(highest fd) scan shows ("select at scale"): past
# FD_SETSIZE, so the select reference sits these out while our select backend runs them.
LARGE_E = [Scenario("e5k", "5,000 conns, 64 B", conns=5000, part="e")]
LARGE_E_FULL = LARGE_E + [Scenario("e10k", "10,000 conns, 64 B", conns=10000, part="e")]


def scenarios(full):
    """(a)-(f) in order, with (e)'s larger counts after (e): 5,000, and 10,000 in --full."""
    large = LARGE_E_FULL if full else LARGE_E
    i = next(i for i, sc in enumerate(SCENARIOS) if sc.key == "e") + 1
    return SCENARIOS[:i] + large + SCENARIOS[i:]

# The targets (issue 5) are on these scenarios' server CPU per message.
TARGET_SCENARIOS = ("b", "c", "d")


def ladder_scenarios(full):
    counts = [1, 10, 100, 1000] + ([5000] if full else [])
    return [Scenario(f"ladder-{n}", f"{n:,} conns, 64 B", conns=n) for n in counts]


# Memory per idle connection: this many idle clients held open against each server.
IDLE_MEMORY_CONNS = 10_000


@dataclasses.dataclass(frozen=True)
class MemoryProbe:
    """How one server's idle-connection memory is taken (see measure.idle_memory)."""
    conns: int = IDLE_MEMORY_CONNS
    # "rss": the server's VmRSS, which counts every thread's resident stack pages too;
    # "pss": the proportional set size of the server and its children added, so that
    # pages a forked child still shares with its parent count once in all.
    footprint: str = "rss"
    # Seconds the load generator's one active client exchanges unmeasured, then measured,
    # once the idle ones are connected: the clients are held open that long. A blocking
    # server starts a thread or a child per client and may still be doing so when the last
    # connect() returns; the active client, connected last, waits for its turn.
    warmup: float = 0.5
    hold: float = 1.0


# The blocking models at two counts, where the cost of a thread or a child shows; forking
# takes a second per few hundred children on one CPU, so its larger count is --full only,
# and at 4,000, under reactor-serve's cap of 4,096 children. The pool, a loop per thread,
# holds as many as the reactor rows. sync has no row: see servers.memory_models.
def memory_models(full):
    """[(model, MemoryProbe)] for the models that are not the reactor per backend."""
    forking = (1_000, 4_000) if full else (1_000,)
    return ([("threading", MemoryProbe(n, "rss", 4.0, 1.0)) for n in (1_000, 5_000)]
            + [("forking", MemoryProbe(n, "pss", 4.0, 1.0)) for n in forking]
            + [("pool", MemoryProbe())])


@dataclasses.dataclass(frozen=True)
class Settings:
    rounds: int
    warmup: float
    seconds: float
    full: bool

    @staticmethod
    def quick():
        return Settings(rounds=3, warmup=0.3, seconds=0.7, full=False)

    @staticmethod
    def complete():
        return Settings(rounds=5, warmup=1.0, seconds=3.0, full=True)
