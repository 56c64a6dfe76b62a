"""The stream worker: `python -m services.stream worker`."""

from services.stream.app import app

if __name__ == "__main__":
    app.main()
