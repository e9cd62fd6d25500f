// chargewire back office: small enhancements on pages that work without them.
// The subscription form shows only the fields that apply (webhook or Kafka; SASL and TLS by protocol),
// the event checklist is searchable, secrets can be copied, and the catalog can be searched.
"use strict";

(function () {
  // Hidden sections are also disabled, so their values are not submitted.
  function showSection(section, visible) {
    section.hidden = !visible;
    section.querySelectorAll("input, select, textarea").forEach(function (control) {
      control.disabled = !visible;
    });
  }

  function setUpViaChoice(form) {
    var choices = form.querySelectorAll("[data-via-choice]");
    if (!choices.length) return;
    function update() {
      var chosen = form.querySelector("[data-via-choice]:checked");
      form.querySelectorAll("[data-via]").forEach(function (section) {
        showSection(section, chosen !== null && section.getAttribute("data-via") === chosen.value);
      });
      updateProtocol(form);
    }
    choices.forEach(function (choice) { choice.addEventListener("change", update); });
    update();
  }

  function updateProtocol(form) {
    var protocol = form.querySelector("[data-protocol-choice]");
    if (!protocol) return;
    var kafka = form.querySelector("[data-via='kafka']");
    var kafkaShown = kafka !== null && !kafka.hidden;
    var value = protocol.value;
    form.querySelectorAll("[data-needs]").forEach(function (section) {
      var need = section.getAttribute("data-needs");
      var applies = need === "sasl" ? value.indexOf("SASL_") === 0 : value === "SSL" || value === "SASL_SSL";
      showSection(section, kafkaShown && applies);
    });
  }

  function setUpProtocol(form) {
    var protocol = form.querySelector("[data-protocol-choice]");
    if (!protocol) return;
    protocol.addEventListener("change", function () { updateProtocol(form); });
    updateProtocol(form);
  }

  function setUpEventPicker(form) {
    var search = form.querySelector("[data-event-search]");
    var counter = form.querySelector("[data-selected-count]");
    var boxes = form.querySelectorAll("[data-event-option] input[type='checkbox']");
    function count() {
      if (!counter) return;
      var chosen = 0;
      boxes.forEach(function (box) { if (box.checked) chosen += 1; });
      counter.textContent = chosen + " selected";
    }
    boxes.forEach(function (box) { box.addEventListener("change", count); });
    form.querySelectorAll("[data-select-group]").forEach(function (button) {
      button.addEventListener("click", function () {
        var group = button.closest("[data-event-group]");
        var visible = Array.prototype.filter.call(
          group.querySelectorAll("[data-event-option]"), function (option) { return !option.hidden; });
        var all = visible.every(function (option) { return option.querySelector("input").checked; });
        visible.forEach(function (option) { option.querySelector("input").checked = !all; });
        count();
      });
    });
    if (search) {
      search.addEventListener("input", function () { filterItems(form, search.value, "[data-event-group]", "[data-event-option]"); });
      // Enter in the search box must not submit the whole form.
      search.addEventListener("keydown", function (event) { if (event.key === "Enter") event.preventDefault(); });
    }
    count();
  }

  function filterItems(root, query, groupSelector, itemSelector) {
    var words = query.toLowerCase().split(/\s+/).filter(Boolean);
    var anyShown = false;
    root.querySelectorAll(groupSelector).forEach(function (group) {
      var shown = 0;
      group.querySelectorAll(itemSelector).forEach(function (item) {
        var text = item.getAttribute("data-search") || "";
        var match = words.every(function (word) { return text.indexOf(word) !== -1; });
        item.hidden = !match;
        if (match) shown += 1;
      });
      group.hidden = shown === 0;
      if (shown) anyShown = true;
    });
    var none = root.querySelector("[data-no-match]");
    if (none) none.hidden = anyShown;
  }

  function setUpCopyButtons() {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var source = document.getElementById(button.getAttribute("data-copy"));
        if (!source || !navigator.clipboard) return;
        navigator.clipboard.writeText(source.textContent.trim()).then(function () {
          button.textContent = "Copied";
        });
      });
    });
  }

  function setUpCatalogSearch() {
    var search = document.querySelector("[data-catalog-search]");
    if (!search) return;
    search.addEventListener("input", function () {
      filterItems(document, search.value, "[data-catalog-group]", "[data-catalog-item]");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form.subscription-form").forEach(function (form) {
      setUpViaChoice(form);
      setUpProtocol(form);
      setUpEventPicker(form);
    });
    var summary = document.getElementById("error-summary");
    if (summary) summary.focus();
    setUpCopyButtons();
    setUpCatalogSearch();
  });
})();
