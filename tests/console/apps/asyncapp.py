"""An asyncio service: a ticking task and a coroutine to await from the shell."""
import asyncio
import sys

hits = 0
greeting = "hello from the app"


async def fetch(n):
    await asyncio.sleep(0.01)
    return n * 2


async def ticker():
    global hits
    while True:
        hits += 1
        await asyncio.sleep(0.05)


async def main():
    print("app ready", flush=True)
    await ticker()


if __name__ == "__main__":
    asyncio.run(main())
