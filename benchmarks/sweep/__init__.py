"""The sweep engine behind `python -m benchmarks.run` (methods x tasks x seeds, each run in its own process).

Its modules depend on one another in one direction only:

- `job`: the sweep's settings (`Args`), a run (`Run`: a method on a task with a seed), its command line, the
  configuration its summary records, what is already there (`assess`: done, resume, fresh or mismatch), and the
  teacher-alone method (`teacher_run`, run in a child process like the training scripts).
- `local`: runs as child processes of this machine, each in its own process group (`Sweep`: the folder's lock,
  the children, stopping on a signal; `execute`: one run; `run_locally`: several at a time).
- `ray_backend`: the same runs as Ray tasks on a cluster, each executed on its worker as `local` does.
- `cli`: the command line (`main`), which checks and assesses the runs, takes the lock, and hands them to a backend.

`benchmarks/run.py` is the command's entry point; the docstring of `cli` says how a sweep stops and continues.
"""
