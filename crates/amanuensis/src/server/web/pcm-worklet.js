// amanuensis web page: an AudioWorklet that turns the microphone into 16 kHz mono PCM16 and
// posts it to the page in chunks of about 128 ms. The context usually runs at 16 kHz already
// (the browser resamples); otherwise each output sample is the mean of the input samples it
// covers (a box filter before decimation, enough against aliasing for speech).
"use strict";

const OUT_RATE = 16000;
const CHUNK = 2048;

class PcmWriter extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / OUT_RATE; // input samples per output sample
    this.seen = 0; // input samples so far
    this.next = this.step; // input count at which the next output sample is complete
    this.acc = 0;
    this.count = 0;
    this.buf = new Int16Array(CHUNK);
    this.n = 0;
    // "flush": send what is buffered now, then say so (the page waits for it when stopping).
    this.port.onmessage = (e) => {
      if (e.data === "flush") { this.flush(); this.port.postMessage("flushed"); }
    };
  }

  push(x) {
    const v = Math.max(-1, Math.min(1, x));
    this.buf[this.n++] = v < 0 ? v * 32768 : v * 32767;
    if (this.n === CHUNK) this.flush();
  }

  flush() {
    if (this.n) this.port.postMessage(this.buf.slice(0, this.n).buffer, []);
    this.n = 0;
  }

  process(inputs) {
    const chans = inputs[0];
    if (!chans || !chans.length) return true;
    const len = chans[0].length;
    for (let i = 0; i < len; i++) {
      let x = 0;
      for (const c of chans) x += c[i];
      x /= chans.length;
      if (this.step === 1) { this.push(x); continue; }
      this.acc += x;
      this.count++;
      if (++this.seen >= this.next) {
        this.push(this.acc / this.count);
        this.next += this.step;
        this.acc = 0;
        this.count = 0;
      }
    }
    return true;
  }
}

registerProcessor("pcm-writer", PcmWriter);
