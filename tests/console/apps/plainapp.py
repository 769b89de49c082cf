"""A plain app: the main thread works in Python, a counter goes up."""
import time

counter = 0
settings = {"mode": "prod"}


def work(x):
    y = x + 1
    z = y * 2
    return z


def main():
    global counter
    print("app ready", flush=True)
    while True:
        counter = work(counter) % 1000
        time.sleep(0.02)


if __name__ == "__main__":
    main()
