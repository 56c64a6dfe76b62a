"""The retry worker, a process of its own: `python -m services.stream.retry worker`."""

from services.stream.retry.app import app, settings

if __name__ == "__main__":
    settings.retry_data_dir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    app.main()
