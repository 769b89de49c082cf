"""A target with a hot line: the main thread calls hot() in a tight loop, counting calls.

    python3 /wapps/hot.py

Module globals (reach them with exec through sys.modules["__main__"]): `calls`.
Prints "READY" once the loop starts.
"""
import time

calls = 0


def hot(i):
    global calls
    calls += 1
    x = i * 2  # HOT-LINE
    return x


def main():
    print("READY", flush=True)
    i = 0
    while True:
        hot(i)
        i += 1
        if i % 2000 == 0:
            time.sleep(0.0005)  # leaves the CPU to the other tests' containers


if __name__ == "__main__":
    main()
