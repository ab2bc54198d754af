"""jobq: a Python client, concurrent.futures Executor and worker for jobqd.

Standard library only; tqdm is used for progress bars when installed.
"""
from .client import TERMINAL_STATES, Client, JobqError
from .executor import Executor, JobFailed, JobFuture, payload_for, type_name
from .progress import ProgressBar, wait_all
from .worker import Job, JobCanceled, Worker, current_job, load_worker

__version__ = "0.1.0"

__all__ = [
    "Client", "JobqError", "TERMINAL_STATES",
    "Executor", "JobFuture", "JobFailed", "payload_for", "type_name",
    "ProgressBar", "wait_all",
    "Worker", "Job", "JobCanceled", "current_job", "load_worker",
]
