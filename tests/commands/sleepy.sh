#!/bin/bash
# Sleeps far past any timeout, with a background grandchild in the same
# process group that ignores SIGTERM. Both carry "jobq-marker-<marker>" in
# argv[0] (payload {"marker": "..."}) so a test can find them in /proc.
payload=$(cat)
marker=$(printf '%s' "$payload" | sed -n 's/.*"marker":"\([A-Za-z0-9_-]*\)".*/\1/p')
(trap '' TERM; exec -a "jobq-marker-$marker-grandchild" sleep 300) &
exec -a "jobq-marker-$marker-leader" sleep 300
