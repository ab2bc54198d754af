"""The client's tests. A hang is a failure: the stacks are printed and the
run ends after WATCHDOG_S (default 100 s)."""
import faulthandler
import os

faulthandler.dump_traceback_later(float(os.environ.get("WATCHDOG_S", "100")), exit=True)
