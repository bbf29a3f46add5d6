/* Video slide: track play / pause / ended / seek with the current time; chapters seek the video. */
(function () {
  "use strict";
  var video = CZ.$("#moa-video");
  var chapters = CZ.$$(".chapters button");
  function t() { return Math.round(video.currentTime * 10) / 10; }
  function payload(extra) {
    var d = { video: "cardiozen-moa.mp4", current_time: t(), duration: isFinite(video.duration) ? Math.round(video.duration * 10) / 10 : null };
    if (extra) Object.keys(extra).forEach(function (k) { d[k] = extra[k]; });
    return d;
  }
  var seeking = false;
  video.addEventListener("play", function () { CZ.track("video_play", payload()); });
  video.addEventListener("pause", function () { if (!video.ended && !seeking) CZ.track("video_pause", payload()); });
  video.addEventListener("ended", function () { CZ.track("video_ended", payload()); CZ.save("video-watched", true); });
  video.addEventListener("seeking", function () { seeking = true; });
  video.addEventListener("seeked", function () { seeking = false; CZ.track("video_seeked", payload()); });
  video.addEventListener("timeupdate", function () {
    var now = video.currentTime, idx = 0;
    chapters.forEach(function (b, i) { if (now >= parseFloat(b.getAttribute("data-seek")) - 0.05) idx = i; });
    chapters.forEach(function (b, i) { b.classList.toggle("is-current", i === idx); });
  });
  chapters.forEach(function (b) {
    b.addEventListener("click", function () {
      var to = parseFloat(b.getAttribute("data-seek"));
      CZ.track("video_chapter", payload({ chapter: b.textContent.replace(/^\d+:\d+/, "").trim(), to: to }));
      video.currentTime = to;
      var p = video.play();
      if (p && p.catch) p.catch(function () { /* autoplay policy: user can press play */ });
    });
  });
  // Leaving the slide mid-play: record where the viewer stopped.
  window.addEventListener("pagehide", function () { if (!video.paused && !video.ended) CZ.track("video_pause", payload({ reason: "slide_exit" })); });
  chapters[0].classList.add("is-current");
})();
