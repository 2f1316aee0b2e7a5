// amanuensis web page: the audio player, synced with the transcript. Every timed piece of the
// transcript (a word, or a whole segment when there are no word times) is a "mark" with its
// element; while the audio plays the current mark is highlighted and kept in view, and
// clicking anything that carries data-t seeks there.
"use strict";

export class Player {
  constructor(audio, container) {
    this.audio = audio;
    this.marks = [];
    this.current = null;
    this.url = null;
    this.raf = 0;
    const tick = () => this.update();
    audio.addEventListener("timeupdate", tick);
    audio.addEventListener("seeked", tick);
    audio.addEventListener("play", () => this.follow());
    audio.addEventListener("pause", () => { cancelAnimationFrame(this.raf); this.update(); });
    for (const c of container) {
      c.addEventListener("click", (e) => {
        const el = e.target.closest("[data-t]");
        if (el && c.contains(el)) this.seek(Number(el.dataset.t));
      });
      c.addEventListener("keydown", (e) => {
        const el = e.target.closest("[data-t]");
        if (el && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); this.seek(Number(el.dataset.t)); }
      });
    }
  }

  /// Plays `blob` (the uploaded file or the recording); forgets the previous one.
  load(blob) {
    this.clear();
    this.url = URL.createObjectURL(blob);
    this.audio.src = this.url;
    this.audio.hidden = false;
  }

  clear() {
    this.audio.pause();
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = null;
    this.audio.removeAttribute("src");
    this.audio.load();
    this.audio.hidden = true;
    this.marks = [];
    this.current = null;
  }

  /// A timed element; marks arrive in time order (segments are decoded in order).
  mark(start, end, el, group) {
    this.marks.push({ start, end, el, group });
    el.dataset.t = String(start);
  }

  /// Seeks to `t` seconds and plays from there.
  seek(t) {
    if (!this.url || !Number.isFinite(t)) return;
    this.audio.currentTime = t;
    const p = this.audio.play();
    if (p && p.catch) p.catch(() => {});
    this.update();
  }

  follow() {
    cancelAnimationFrame(this.raf);
    const step = () => {
      this.update();
      if (!this.audio.paused) this.raf = requestAnimationFrame(step);
    };
    this.raf = requestAnimationFrame(step);
  }

  /// The mark playing at time t: the last that starts at or before t, while t is inside it
  /// or in the pause before the next one.
  at(t) {
    let lo = 0, hi = this.marks.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.marks[mid].start <= t) lo = mid + 1; else hi = mid;
    }
    const m = this.marks[lo - 1];
    return m && t < Math.max(m.end, m.start + 0.05) + 0.3 ? m : null;
  }

  update() {
    const m = this.url ? this.at(this.audio.currentTime) : null;
    if (m === this.current) return;
    if (this.current) {
      this.current.el.classList.remove("current");
      if (this.current.group) this.current.group.classList.remove("playing");
    }
    this.current = m;
    if (!m) return;
    m.el.classList.add("current");
    if (m.group) m.group.classList.add("playing");
    if (!this.audio.paused) keepInView(m.el);
  }
}

/// Scrolls the nearest scrollable box (or the page) just enough to show `el`.
export function keepInView(el) {
  const r = el.getBoundingClientRect();
  const box = el.closest(".scroll");
  const top = box ? box.getBoundingClientRect().top : 0;
  const bottom = box ? box.getBoundingClientRect().bottom : window.innerHeight;
  if (r.top < top || r.bottom > bottom) el.scrollIntoView({ block: "center", behavior: "smooth" });
}
