"""
The runner stops the same way whatever the signals: real processes, real signals.

A node that needs time to stop (like the G1 bridge's ramp down) gets it after one SIGINT, after
two SIGINTs 0.3 s apart and after SIGTERM; the process exits 0 without a traceback. A node that
cannot be built exits 2 with one line naming the reason.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

from dit4dit_common.runner import Graph, StartError, StopRequest
import pytest

NODE = textwrap.dedent("""
    import sys
    import time

    from dit4dit_common.runner import run_node
    from rclpy.node import Node


    class Slow(Node):
        shutdown_budget_s = 5.0

        def __init__(self):
            super().__init__('slow_stopper')
            if '--fail' in sys.argv:
                raise ValueError('parameter speed must be > 0')
            self.finished, self.deadline, self.ticks = False, None, 0
            self.create_timer(0.01, self.tick)
            print('ready', flush=True)

        def request_shutdown(self):
            self.deadline = time.monotonic() + 1.0
            self.started = time.monotonic()

        def tick(self):
            self.ticks += 1
            if self.deadline is not None and time.monotonic() >= self.deadline:
                print(f'finished after {time.monotonic() - self.started:.2f} s', flush=True)
                self.finished = True


    sys.exit(run_node(Slow, name='slow'))
""")


def _start(tmp_path, *args):
    script = tmp_path / 'slow_node.py'
    script.write_text(NODE)
    proc = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    deadline = time.monotonic() + 30
    line = ''
    while 'ready' not in line and proc.poll() is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
    return proc


@pytest.mark.parametrize('pattern', ['SIGINT', 'SIGINT SIGINT', 'SIGTERM',
                                     'SIGINT SIGTERM SIGINT'])
def test_the_stop_completes_whatever_the_signals(tmp_path, pattern):
    proc = _start(tmp_path)
    assert proc.poll() is None, proc.stderr.read()
    for i, name in enumerate(pattern.split()):
        if i:
            time.sleep(0.3)
        proc.send_signal(getattr(signal, name))
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert 'Traceback' not in err and 'KeyboardInterrupt' not in err
    finished = [ln for ln in out.splitlines() if ln.startswith('finished after')]
    assert finished and float(finished[0].split()[2]) >= 0.99, out
    if len(pattern.split()) > 1:
        assert 'still stopping' in err                  # later signals are answered, not obeyed


def test_a_node_that_cannot_be_built_exits_2_with_one_line(tmp_path):
    proc = _start(tmp_path, '--fail')
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert '[slow] cannot start: parameter speed must be > 0' in err
    assert 'Traceback' not in err


def test_a_graph_destroys_what_it_built_when_a_node_fails():
    import rclpy
    destroyed = []

    def good():
        node = rclpy.create_node('good_node')
        destroy = node.destroy_node
        node.destroy_node = lambda: destroyed.append(node.get_name()) or destroy()
        return node

    def bad():
        raise ValueError('bad parameter')
    with pytest.raises(StartError, match='bad: bad parameter'):
        with Graph({'good': good, 'bad': bad}, name='t'):
            pass
    assert destroyed == ['good_node']
    assert not rclpy.ok()                     # the context was shut down


def test_stop_request_counts_signals_and_restores_handlers():
    before = signal.getsignal(signal.SIGINT)
    with StopRequest('t') as stop:
        assert not stop
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert stop and stop.signals == [signal.SIGINT]
    assert signal.getsignal(signal.SIGINT) is before
