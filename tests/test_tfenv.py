"""TensorFlow imported through denoisekit keeps its native start-up chatter off stderr."""

import subprocess
import sys


def test_import_tensorflow_leaves_stderr_clean_and_restores_it():
    code = (
        "import sys\n"
        "from denoisekit.tfenv import import_tensorflow\n"
        "tf = import_tensorflow()\n"
        "print(tf.reduce_sum(tf.ones(3)).numpy())\n"
        "print('after', file=sys.stderr)\n"  # stderr works again afterwards
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "3.0"
    assert proc.stderr.strip() == "after"
