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


def test_keras_is_not_imported_with_tensorflow_but_tf_keras_still_works():
    code = (
        "import sys\n"
        "from denoisekit.tfenv import import_tensorflow\n"
        "tf = import_tensorflow()\n"
        "print('keras' in sys.modules, 'matplotlib.pyplot' in sys.modules)\n"
        "layer = tf.keras.layers.Dense(2)\n"  # loaded on first use, for plugins that want it
        "print(layer(tf.ones((1, 3))).shape, tf.keras.optimizers.Adam is not None)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["False False", "(1, 2) True"]
