"""The primary stream worker: `python -m services.stream worker`."""

from services.stream.app import app, settings

if __name__ == "__main__":
    settings.primary_data_dir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    app.main()
