/*
 * Cardiozen mini framework (sample, written for edetail): a single page that shows the slides
 * of presentation.json one at a time. The slide to show comes from the page URL,
 * ?path=<storyboard or structure>/<slide> (or ?path=<slide>), the same path syntax slides use
 * to link to each other. Slides are HTML fragments loaded from their template file; an element
 * `data-module="<module id>"` in a slide is filled with that module's template.
 * The deck's own controls: #next / #prev, [data-goto] (a path), [data-track] (custom data),
 * [data-pdf] (openPDF), [data-mail] (sendMail). At start it asks the container who presents.
 */
(function (w, d) {
  'use strict';
  var model, list = [], index = 0, current = null, root = null;

  function get(url, done) {
    var x = new XMLHttpRequest();
    x.open('GET', url);
    x.onload = function () { done(x.status === 0 || (x.status >= 200 && x.status < 300) ? x.responseText : null); };
    x.onerror = function () { done(null); };
    x.send();
  }

  function slideDir() {
    var p = model.pathToSlides || 'slides/<id>/';
    return p.indexOf('<id>') >= 0 ? p : p.replace(/\/?$/, '/') + '<id>/';
  }

  function templateOf(id) {
    var s = model.slides[id] || {};
    if (s.files && s.files.templates && s.files.templates.length) { return s.files.templates[0]; }
    return slideDir().replace(/<id>/g, id) + (s.template || id + '.html');
  }

  function contentOf(id, seen) {
    seen = seen || {};
    if (seen[id]) { return []; }
    seen[id] = true;
    if (model.slides[id]) { return [id]; }
    var group = (model.storyboards && model.storyboards[id]) || (model.structures && model.structures[id]);
    var out = [];
    if (group) { group.content.forEach(function (c) { out = out.concat(contentOf(c, seen)); }); }
    return out;
  }

  function firstRoot() {
    var sb = model.storyboard;
    if (typeof sb === 'string') { return sb; }
    if (sb && sb.length) { return sb[0]; }
    return Object.keys(model.storyboards || model.structures || {})[0];
  }

  function pathOf(id) { return root && root !== id ? root + '/' + id : id; }

  function addStyles(files) {
    (files.styles || []).forEach(function (href) {
      if (!d.querySelector('link[href="' + href + '"]')) { var l = d.createElement('link'); l.rel = 'stylesheet'; l.href = href; d.head.appendChild(l); }
    });
  }

  function embedModules(container) {
    [].forEach.call(container.querySelectorAll('[data-module]'), function (el) {
      var m = (model.modules || {})[el.getAttribute('data-module')];
      var files = (m && m.files) || {};
      if (!files.templates || !files.templates.length) { return; }
      addStyles(files);
      get(files.templates[0], function (html) { if (html !== null) { el.innerHTML = html; } });
    });
  }

  function show(i) {
    if (i < 0 || i >= list.length) { return; }
    var id = list[i];
    if (current) { czLib.slideExit(current, (model.slides[current] || {}).name, pathOf(current)); }
    index = i;
    current = id;
    var files = (model.slides[id] || {}).files || {};
    addStyles(files);
    (files.scripts || []).forEach(function (src) {
      if (!d.querySelector('script[src="' + src + '"]')) { var s = d.createElement('script'); s.src = src; d.head.appendChild(s); }
    });
    get(templateOf(id), function (html) {
      if (id !== current) { return; } // another slide was asked for meanwhile
      var box = d.getElementById('slide');
      box.innerHTML = html || '<p>Missing slide ' + id + '</p>';
      embedModules(box);
      d.documentElement.setAttribute('data-slide', id);
      czLib.slideEnter(id, (model.slides[id] || {}).name, pathOf(id));
      if (w.history && w.history.replaceState) { w.history.replaceState(null, '', '?path=' + pathOf(id)); }
    });
  }

  function open(path) {
    var parts = (path || '').split('/').filter(Boolean);
    var slide = parts.length > 1 ? parts[parts.length - 1] : (model.slides[parts[0]] ? parts[0] : null);
    var r = parts.length > 1 || !slide ? parts[0] : null;
    if (!r && slide) {
      // A slide on its own, or one of the current root's slides.
      r = list.indexOf(slide) >= 0 ? root : slide;
    }
    root = r || firstRoot();
    list = contentOf(root);
    var i = slide ? list.indexOf(slide) : 0;
    show(i < 0 ? 0 : i);
  }

  function param(name) {
    var m = new RegExp('[?&]' + name + '=([^&#]*)').exec(w.location.search);
    return m ? decodeURIComponent(m[1]) : null;
  }

  d.addEventListener('click', function (e) {
    var t = e.target.closest ? e.target.closest('[data-goto],[data-track],[data-pdf],[data-mail],#next,#prev') : null;
    if (!t) { return; }
    e.preventDefault();
    if (t.id === 'next') { show(index + 1); }
    else if (t.id === 'prev') { show(index - 1); }
    else if (t.hasAttribute('data-goto')) { open(t.getAttribute('data-goto')); }
    else if (t.hasAttribute('data-pdf')) { czLib.openPDF(t.getAttribute('data-pdf')); }
    else if (t.hasAttribute('data-mail')) { czLib.sendMail(t.getAttribute('data-mail'), t.textContent.trim()); }
    else { czLib.custom(t.getAttribute('data-track'), t.textContent.trim(), t.getAttribute('data-value') || '', pathOf(current)); }
  });

  get('presentation.json', function (text) {
    model = JSON.parse(text);
    open(param('path'));
    czLib.getPresenter(function (p) {
      var el = d.getElementById('presenter');
      if (el && p && p.id) { el.textContent = 'Presenter ' + p.id; }
    });
  });
  w.czFramework = { open: open, next: function () { show(index + 1); }, prev: function () { show(index - 1); } };
})(window, document);
