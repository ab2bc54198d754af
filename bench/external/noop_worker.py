"""The no-op task the external benchmark's worker processes run:
python -m jobq worker --url URL --queue py.bench bench.external.noop_worker:worker"""
import jobq

worker = jobq.Worker("http://127.0.0.1:8080", queues=["py.bench"], concurrency=1)


@worker.task()
def noop():
    return None
