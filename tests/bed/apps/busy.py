"""A target whose main thread spins in pure Python (for injection-latency tests).

    python3 /app/busy.py

Module globals: `ticks` (loop iterations so far) and `last_tick` (time.monotonic() of the
latest one) -- a payload can read them via sys.modules["__main__"].
Prints "READY 0" (no port) once the loop is about to start.
"""
import time

ticks = 0
last_tick = 0.0


def work(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


def main():
    global ticks, last_tick
    print("READY 0", flush=True)
    while True:
        work(1000)
        ticks += 1
        last_tick = time.monotonic()


if __name__ == "__main__":
    main()
