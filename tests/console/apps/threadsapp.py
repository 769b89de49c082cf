"""The main thread spins without calling anything; a worker thread named "worker" sleeps."""
import threading
import time

ticks = 0
spins = 0


def worker():
    global ticks
    while True:
        ticks += 1
        time.sleep(0.01)  # WORKER-LINE


threading.Thread(target=worker, name="worker", daemon=True).start()
print("app ready", flush=True)
while True:
    spins += 1  # SPIN-LINE
