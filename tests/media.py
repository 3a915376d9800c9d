"""Generated media clips for player tests (real ffmpeg, no fixtures in git).

``make_clip(dirpath, seconds, name=..., fmt="mp4")`` writes a testsrc video
with a sine tone, mp4 with the index at the front (faststart) so it streams
over HTTP. A clip is made once per (dir, name, length, size, fmt) and reused; with
the default name an existing file from an earlier run is reused too.
"""
from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path
from typing import Dict, Optional, Tuple

_lock = threading.Lock()
_made: Dict[Tuple, Path] = {}


class MediaError(RuntimeError):
    pass


def make_clip(dirpath, seconds: float, name: Optional[str] = None, fmt: str = "mp4", *,
              size: str = "320x240", rate: int = 25, audio: bool = True) -> Path:
    """Path of a ``seconds`` long clip in ``dirpath`` (created if missing)."""
    if shutil.which("ffmpeg") is None:
        raise MediaError("ffmpeg is not installed: it is needed to generate test clips")
    folder = Path(dirpath)
    folder.mkdir(parents=True, exist_ok=True)
    stem = name or f"clip-{seconds:g}s-{size}-{rate}{'' if audio else '-mute'}"
    path = folder / f"{stem}.{fmt}"
    key = (str(folder.resolve()), stem, float(seconds), size, rate, audio, fmt)
    with _lock:
        # Auto names encode every parameter, so a file left by an earlier run is the same clip.
        if path.exists() and (key in _made or name is None):
            return path
        tmp = path.with_name(f".{path.name}.part.{fmt}")
        cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y",
               "-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}"]
        if audio:
            cmd += ["-f", "lavfi", "-i", "sine=frequency=440"]
        cmd += ["-t", f"{seconds:g}", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                "-g", str(rate)]  # a keyframe each second: seeks land near where asked
        if audio:
            cmd += ["-c:a", "aac", "-shortest"]
        if fmt == "mp4":
            cmd += ["-movflags", "+faststart"]
        cmd.append(str(tmp))
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise MediaError(f"ffmpeg could not make {path.name}: {done.stderr.strip()[-500:]}")
        tmp.replace(path)
        _made[key] = path
        return path
