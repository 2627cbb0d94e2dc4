"""Operating a running stack: target resolution, the API client, results, the task store,
queues, bulk submission, logs, the gallery and doctor's readers."""
