"""The run layer: one loop for images, videos and cameras (loop), the stop mechanism (stop), the record
contract (records), the capture and writer threads (prefetch, writer), the summary (summary), and the job
that assembles a run from a command's options (job)."""
