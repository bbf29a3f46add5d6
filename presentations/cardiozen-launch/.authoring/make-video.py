#!/usr/bin/env python3
"""Regenerate media/cardiozen-moa.mp4 and media/cardiozen-moa-poster.jpg (Cardiozen launch deck).

Renders the 10 s, 640x360, 25 fps mode-of-action animation frame by frame with ImageMagick
(`convert`, Liberation Sans fonts), encodes H.264 (Main profile, yuv420p, +faststart, no audio)
with ffmpeg, and writes the poster JPG from the title frame (t = 2 s).

    apt-get install -y ffmpeg imagemagick fonts-liberation
    python3 presentations/cardiozen-launch/.authoring/make-video.py

This folder is a dotfolder, so the packer leaves it out of the bundle. Fictional product for
demonstration; the captions in media/cardiozen-moa.en.vtt follow the same timeline.
"""
import math, os, subprocess, sys, shutil, tempfile
W, H, FPS, DUR = 640, 360, 25, 10.0
MEDIA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "media")
OUT = os.path.join(MEDIA, "cardiozen-moa.mp4")
POSTER = os.path.join(MEDIA, "cardiozen-moa-poster.jpg")
FR = tempfile.mkdtemp(prefix="cz-frames-")
CONVERT = shutil.which("convert-im6.q16") or shutil.which("convert") or "convert"
B = "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf"
R = "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"
NAVY, RED, TEAL, SKY, GREY, WHITE = "#0f2747", "#d6323f", "#1f9e9a", "#9fc3e6", "#8da2bd", "#ffffff"

def clamp(x, a=0.0, b=1.0): return max(a, min(b, x))
def ease(x):
    x = clamp(x); return 1 - (1 - x) ** 3
def seg(t, a, b): return clamp((t - a) / (b - a))
def rgba(hexc, alpha):
    h = hexc.lstrip('#'); r, g, b_ = int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)
    return f"rgba({r},{g},{b_},{alpha:.3f})"

def text(args, s, x, y, size, color, font=B, alpha=1.0, gravity="NorthWest"):
    if alpha <= 0.01: return
    args += ["-gravity", gravity, "-font", font, "-pointsize", str(size), "-fill", rgba(color, alpha),
             "-annotate", f"+{int(x)}+{int(y)}", s]

def frame(t):
    a = [CONVERT, "-size", f"{W}x{H}", "xc:" + NAVY]
    # subtle vignette band
    a += ["-fill", rgba("#16345e", 1), "-draw", f"rectangle 0,{H-34} {W},{H}"]
    # scene fades
    s1 = 1 - seg(t, 2.3, 2.7)                    # title
    s2 = seg(t, 2.5, 2.9) * (1 - seg(t, 7.7, 8.1))  # mechanism
    s3 = seg(t, 7.9, 8.3)                        # result
    if s1 > 0:
        # ECG trace drawn progressively
        pts = []
        n = int(ease(seg(t, 0.0, 1.6)) * 120)
        for i in range(n + 1):
            x = 40 + i * 4.67
            ph = (i % 40)
            y = 120
            if ph == 18: y = 104
            elif ph == 19: y = 150
            elif ph == 20: y = 72
            elif ph == 21: y = 132
            elif 26 <= ph <= 30: y = 120 - 8 * math.sin((ph - 26) / 4 * math.pi)
            pts.append(f"{x:.1f},{y:.1f}")
        ys = [float(p.split(",")[1]) for p in pts]
        pts = [p for k, p in enumerate(pts) if k == 0 or k == len(pts) - 1 or not (ys[k - 1] == ys[k] == ys[k + 1])]
        if len(pts) > 1:
            a += ["-fill", "none", "-stroke", rgba(RED, s1), "-strokewidth", "4", ] + sum([["-draw", f"line {pts[k]} {pts[k + 1]}"] for k in range(len(pts) - 1)], []) + ["-stroke", "none"]
        text(a, "Cardiozen", 40, 170, 54, WHITE, B, s1 * ease(seg(t, 0.5, 1.2)))
        text(a, "(zenacardin) film-coated tablets", 42, 232, 22, SKY, R, s1 * ease(seg(t, 0.8, 1.5)))
        text(a, "How it works, in 10 seconds", 42, 262, 18, GREY, R, s1 * ease(seg(t, 1.0, 1.7)))
    if s2 > 0:
        blocked = ease(seg(t, 5.4, 6.0))
        text(a, "Neurohormonal stress over-activates CRK-7", 30, 26, 22, WHITE, B, s2 * (1 - blocked))
        # cardiomyocyte outline
        a += ["-fill", rgba("#173a66", s2), "-stroke", rgba(SKY, s2 * 0.8), "-strokewidth", "2",
              "-draw", "roundrectangle 30,70 610,290 40,40", "-stroke", "none"]
        # stress input arrows
        text(a, "Ang II / NA", 48, 160, 16, SKY, R, s2)
        a += ["-stroke", rgba(SKY, s2), "-strokewidth", "3", "-draw", "line 150,170 205,170", "-stroke", "none",
              "-fill", rgba(SKY, s2), "-draw", "polygon 205,162 219,170 205,178"]
        blocked = ease(seg(t, 5.4, 6.0))
        pulse = 0.5 + 0.5 * math.sin(t * 8)
        glow = s2 * (1 - blocked) * (0.25 + 0.35 * pulse)
        a += ["-fill", rgba(RED, glow), "-draw", "circle 270,170 270,122"]
        a += ["-fill", rgba(RED if blocked < 0.5 else "#5b6f8c", s2), "-draw", "circle 270,170 270,134"]
        text(a, "CRK-7", 243, 160, 18, WHITE, B, s2)
        effects = [("Ca2+ leak from SR", "Ca2+ handling restored"), ("Fibrosis signalling", "Fibrosis signalling reduced"), ("Arrhythmic triggers", "Fewer arrhythmic triggers")]
        for i, (e, ok) in enumerate(effects):
            ap = ease(seg(t, 3.0 + i * 0.5, 3.5 + i * 0.5)) * s2
            y = 105 + i * 65
            a += ["-stroke", rgba(RED, ap * (1 - 0.75 * blocked)), "-strokewidth", "3", "-draw", f"line 308,170 392,{y + 12}", "-stroke", "none"]
            a += ["-fill", rgba("#24497a", ap * (1 - blocked)), "-draw", f"roundrectangle 392,{y - 8} 618,{y + 32} 10,10"]
            a += ["-fill", rgba(TEAL, ap * blocked), "-draw", f"roundrectangle 392,{y - 8} 618,{y + 32} 10,10"]
            text(a, e, 404, y + 1, 16, WHITE, B, ap * (1 - blocked))
            text(a, ok, 404, y + 1, 16, WHITE, B, ap * blocked)
        if blocked > 0:
            # zenacardin "lock" badge
            a += ["-fill", rgba(TEAL, s2 * blocked), "-draw", "roundrectangle 200,236 340,272 18,18"]
            text(a, "zenacardin", 220, 243, 18, WHITE, B, s2 * blocked)
            text(a, "Zenacardin selectively blocks CRK-7", 30, 26, 22, "#9fe0da", B, s2 * blocked, "NorthEast")
    if s3 > 0:
        text(a, "ZENITH-HF primary endpoint", 30, 26, 22, WHITE, B, s3)
        text(a, "CV death or first HF hospitalisation, median 20.4 months", 30, 56, 15, SKY, R, s3)
        base = 270
        g = ease(seg(t, 8.3, 9.3))
        for i, (label, val, col) in enumerate([("Placebo", 20.4, GREY), ("Cardiozen", 16.3, RED)]):
            x0 = 90 + i * 150
            h = val * 7.5 * g
            a += ["-fill", rgba(col, s3), "-draw", f"rectangle {x0},{base - h:.1f} {x0 + 100},{base}"]
            text(a, f"{val * g:.1f}%", x0 + 18, base - h - 30, 20, WHITE, B, s3 * g)
            text(a, label, x0 + 8, base + 8, 16, SKY, R, s3)
        a += ["-stroke", rgba(SKY, s3), "-strokewidth", "2", "-draw", f"line 70,{base} 360,{base}", "-stroke", "none"]
        k = ease(seg(t, 9.0, 9.6)) * s3
        text(a, "22%", 400, 110, 56, TEAL, B, k)
        text(a, "relative risk reduction", 400, 176, 18, WHITE, B, k)
        text(a, "HR 0.78 (95% CI 0.69-0.88)", 400, 206, 16, SKY, R, k)
        text(a, "p<0.001", 400, 230, 16, SKY, R, k)
    text(a, "Fictional product for demonstration  |  CZ-UK-2026-0142", 0, 14, 12, GREY, R, 1.0, "South")
    return a

n = int(DUR * FPS)
for i in range(n):
    subprocess.run(frame(i / FPS) + [f"{FR}/f{i:04d}.png"], check=True)
subprocess.run(["ffmpeg", "-y", "-hide_banner", "-loglevel", "error", "-framerate", str(FPS), "-i", f"{FR}/f%04d.png",
                "-c:v", "libx264", "-profile:v", "main", "-level", "3.1", "-pix_fmt", "yuv420p", "-crf", "26", "-preset", "slow",
                "-tune", "animation", "-movflags", "+faststart", "-an", OUT], check=True)
# poster: the title frame
subprocess.run([CONVERT, f"{FR}/f0050.png", "-strip", "-quality", "82", POSTER], check=True)
shutil.rmtree(FR, ignore_errors=True)
print("wrote", os.path.normpath(OUT), "and", os.path.normpath(POSTER))
