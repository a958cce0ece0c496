/* Schema editors (csplatform/schema_forms.py): add and remove list items, show the inputs of a chosen type,
   durations in words, and say when the advanced JSON will be saved instead of the inputs. Everything works
   without this file too: items are removed with their checkbox and a new type's inputs appear after saving. */
(function () {
  "use strict";
  var SINGULAR = {weeks: "week", days: "day", hours: "hour", minutes: "minute", seconds: "second"};

  function directChild(parent, selector) {
    for (var i = 0; i < parent.children.length; i++) {
      if (parent.children[i].matches(selector)) { return parent.children[i]; }
    }
    return null;
  }

  // A template's HTML with the item index and the editor's current name (an inline row added by Django's
  // "Add another" renames the field's inputs but not what sits inside <template> elements).
  function cloneHtml(template, index) {
    var html = template.innerHTML;
    if (index !== undefined) { html = html.split("__INDEX__").join(String(index)); }
    var editor = template.closest("[data-schema-editor]");
    var raw = editor && editor.querySelector("[data-schema-raw]");
    if (raw && editor.dataset.name && raw.name !== editor.dataset.name) {
      html = html.split(editor.dataset.name + "__").join(raw.name + "__");
    }
    return html;
  }

  function showVariant(container, key) {
    var panel = directChild(container, "[data-variant-panel]");
    if (!panel) { return; }
    var template = null;
    container.querySelectorAll("template[data-variant]").forEach(function (candidate) {
      if (candidate.parentElement === container && candidate.dataset.variant === key) { template = candidate; }
    });
    panel.innerHTML = template ? cloneHtml(template) : "";
    enhance(panel);
  }

  function words(amount, unit) {
    var n = Number(amount);
    if (amount === "" || isNaN(n)) { return ""; }
    return "= " + amount + " " + (n === 1 ? SINGULAR[unit] || unit : unit);
  }

  function updateWords(box) {
    var amount = box.querySelector("input");
    var unit = box.querySelector("select");
    var out = box.querySelector("[data-words]");
    if (amount && unit && out) { out.textContent = words(amount.value.trim(), unit.value); }
  }

  function enhance(root) {
    root.querySelectorAll("[data-schema-add]").forEach(function (button) { button.hidden = false; });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-schema-add]");
    if (!button) { return; }
    event.preventDefault();
    var list = button.closest("[data-schema-items]");
    var template = directChild(list, "template[data-item-template]");
    var index = Number(list.dataset.nextIndex || 0);
    list.dataset.nextIndex = String(index + 1);
    var holder = document.createElement("div");
    holder.innerHTML = cloneHtml(template, index);
    while (holder.firstChild) { list.insertBefore(holder.firstChild, button); }
    enhance(list);
  });

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches("[data-schema-remove]")) {
      var item = target.closest("[data-schema-item]");
      if (item) { item.classList.toggle("schema-removed", target.checked); }
    } else if (target.matches("[data-variant-select]")) {
      showVariant(target.closest("[data-schema-variant]"), target.value);
    } else if (target.name) {
      document.querySelectorAll("[data-schema-editor][data-variant-field]").forEach(function (editor) {
        if (editor.dataset.variantField === target.name && editor.closest("form") === target.closest("form")) {
          showVariant(editor, target.value);
        }
      });
    }
    var box = target.closest("[data-duration]");
    if (box) { updateWords(box); }
  });

  document.addEventListener("input", function (event) {
    var target = event.target;
    if (target.matches("[data-schema-raw]")) {
      target.closest("[data-schema-editor]").classList.add("schema-raw-edited");
    }
    var box = target.closest("[data-duration]");
    if (box) { updateWords(box); }
  });

  document.addEventListener("DOMContentLoaded", function () { enhance(document); });
})();
