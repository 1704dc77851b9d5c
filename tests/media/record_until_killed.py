"""Child process for the SIGKILL test: record frames until killed, print once files hold data."""

import sys
import time
from pathlib import Path

from coral_inference.media.encoder import EncoderSettings
from coral_inference.media.recorder import RecorderOptions, SourceRecorder

sys.path.insert(0, str(Path(__file__).parent))
from frames import moving_bar

recorder = SourceRecorder(
    Path(sys.argv[1]),
    RecorderOptions(segment_seconds=3600, encoder=EncoderSettings(keyframe_interval_s=0.5)),
    name="killed",
)
i = 0
while True:
    recorder.submit(moving_bar(i), media_time=i / 30, fps=30)
    i += 1
    if i == 90:
        time.sleep(1.0)  # let the encoder thread catch up
        print("recording", flush=True)
    time.sleep(1 / 120)
