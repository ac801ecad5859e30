"""
=========================================
One model trained by several processes
=========================================

With ``accelerator=`` a Hugging Face ``accelerate.Accelerator``, :class:`CEBMEncoder`
trains one model on all the processes that ``accelerate launch`` starts: on the GPUs of a
machine, on several machines, or, as here, on two CPU processes talking over gloo. Every
process runs the same script on the same data; each takes its share of every epoch's
batches and its share of the replay buffer's chains, and the gradients are averaged over
all of them at every update. After ``fit`` every process holds the same model, which the
main process saves; it loads in a plain process like any other.

Needs the ``scaling`` extra: ``pip install "sklearn-cebm[scaling]"``.
"""

# %%
# The training script: what each process runs. On CPUs the accelerator is made with
# ``cpu=True`` (without it, each CPU process would count itself alone and train a model
# of its own, which ``fit`` refuses). Each process takes ``batch_size`` rows per update,
# so two processes at 64 make the global batch of 128 that one process takes by default.
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import joblib
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from sklearn_cebm import CEBMEncoder

script = textwrap.dedent(
    """
    import sys, time
    import joblib
    from accelerate import Accelerator
    from sklearn.datasets import load_digits
    from sklearn_cebm import CEBMEncoder

    accelerator = Accelerator(cpu=True)
    X, _ = load_digits(return_X_y=True)
    encoder = CEBMEncoder(
        image_shape=(1, 8, 8),
        encoder="mlp",
        hidden_layer_sizes=(64,),
        max_iter=10,
        batch_size=64,
        precision="float32",
        random_state=0,
        accelerator=accelerator,
    )
    start = time.perf_counter()
    encoder.fit(X)
    print(f"process {accelerator.process_index} of {accelerator.num_processes}: "
          f"{len(encoder.history_[-1]['batches'])} batches per epoch, "
          f"{time.perf_counter() - start:.1f} s")
    if accelerator.is_main_process:
        joblib.dump(encoder, sys.argv[1])
    accelerator.wait_for_everyone()  # all done before the processes part
    accelerator.end_training()
    """
)

# %%
# The launch. ``accelerate launch --multi_gpu`` starts the processes with torch's
# launcher (on a machine without GPUs, as CPU processes); ``--cpu`` would start one. On a
# machine with GPUs, ``accelerate launch --num_processes 4 train.py`` with a plain
# ``Accelerator()`` trains on four of them. One torch thread per process: the two
# processes share this machine's cores.
folder = Path(tempfile.mkdtemp())
(folder / "train.py").write_text(script)
launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
launch += ["--num_processes=2", "--num_machines=1", "--mixed_precision=no"]
with socket.socket() as probe:  # a free port for the processes to meet on
    probe.bind(("127.0.0.1", 0))
    launch += ["--dynamo_backend=no", f"--main_process_port={probe.getsockname()[1]}"]
done = subprocess.run(
    [*launch, str(folder / "train.py"), str(folder / "encoder.joblib")],
    env=dict(os.environ, OMP_NUM_THREADS="1"),
    capture_output=True,
    text=True,
    check=True,
)
print("\n".join(line for line in done.stdout.splitlines() if line.startswith("process")))

# %%
# The saved model, in this plain process: its accelerator is not pickled, and it
# transforms, scores and trains on as any fitted encoder. Its codes serve a logistic
# regression as well as those of one process trained with the same global batch.
X, y = load_digits(return_X_y=True)
two_processes = joblib.load(folder / "encoder.joblib")
print("accelerator after loading:", two_processes.accelerator)
one_process = CEBMEncoder(**dict(two_processes.get_params(), batch_size=128)).fit(X)
regression = LogisticRegression(max_iter=2000)
scores = {
    name: cross_val_score(regression, encoder.transform(X), y, cv=3).mean()
    for name, encoder in (("two processes", two_processes), ("one process", one_process))
}
print(json.dumps({name: round(score, 3) for name, score in scores.items()}))
