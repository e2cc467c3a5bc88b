// The report: one self-contained HTML page (inline SVG and CSS, no script, no network) and the
// JUnit XML, both rendered from the journal alone.
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>

#include "controller/control_error.h"
#include "controller/experiment/experiment.h"
#include "controller/experiment/journal.h"

namespace faultline::experiment {
namespace {

using json = nlohmann::json;

std::string esc(std::string_view text) {
  std::string out;
  for (char c : text) switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  return out;
}

std::string str(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}
double num(const json& j, const char* key, double fallback = 0) {
  const auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : fallback;
}

constexpr const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c",
                                   "#9467bd", "#8c564b", "#e377c2"};

std::string timeline(const json& j) {
  const double end = std::max(num(j, "end", 1), 0.001);
  constexpr double kWidth = 1000, kLeft = 60, kRight = 20, kTop = 30, kPanel = 180, kGap = 40;
  const double plot = kWidth - kLeft - kRight;
  auto x = [&](double t) { return kLeft + plot * std::clamp(t / end, 0.0, 1.0); };
  double max_latency = 1;
  for (const json& p : j["probes"])
    for (const json& r : p["results"]) max_latency = std::max(max_latency, num(r, "latency_ms"));
  const double lat_top = kTop, rate_top = kTop + kPanel + kGap, height = rate_top + kPanel + 50;
  auto y_lat = [&](double ms) { return lat_top + kPanel * (1 - ms / max_latency); };
  auto y_rate = [&](double rate) { return rate_top + kPanel * (1 - rate); };
  std::string s = fmt::format(
      "<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {} {}\" "
      "width=\"100%\" role=\"img\" aria-label=\"timeline\">\n",
      kWidth, height);
  // Fault windows, shaded across both panels, labelled with their injected counts.
  int row = 0;
  for (const json& f : j["faults"]) {
    const double a = num(f, "start"), b = f["end"].is_number() ? num(f, "end") : end;
    const std::string name = str(f, "service") + ":" + str(f, "fault");
    s += fmt::format(
        "<rect class=\"fault-window\" data-fault=\"{}\" x=\"{:.1f}\" y=\"{}\" width=\"{:.1f}\" "
        "height=\"{}\" fill=\"#d62728\" fill-opacity=\"0.12\"><title>{} {:.3f}s-{:.3f}s, {} "
        "injected</title></rect>\n",
        esc(name), x(a), lat_top, std::max(1.0, x(b) - x(a)), rate_top + kPanel - lat_top,
        esc(name), a, b, f.value("injected", 0));
    s += fmt::format(
        "<text class=\"fault-label\" x=\"{:.1f}\" y=\"{}\" font-size=\"11\" fill=\"#a00\">{} "
        "({} injected)</text>\n",
        x(a) + 2, lat_top - 16 + 12 * (row++ % 2), esc(name), f.value("injected", 0));
  }
  // Axes.
  for (double top : {lat_top, rate_top})
    s += fmt::format(
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#999\"/>\n",
        kLeft, top, plot, kPanel);
  s += fmt::format(
      "<text x=\"4\" y=\"{}\" font-size=\"11\">{:.0f} ms</text><text x=\"4\" y=\"{}\" "
      "font-size=\"11\">0 ms</text><text x=\"4\" y=\"{}\" font-size=\"11\">100%</text><text "
      "x=\"4\" y=\"{}\" font-size=\"11\">0%</text>\n",
      lat_top + 10, max_latency, lat_top + kPanel, rate_top + 10, rate_top + kPanel);
  s += fmt::format(
      "<text x=\"{}\" y=\"{}\" font-size=\"12\">probe latency</text><text x=\"{}\" y=\"{}\" "
      "font-size=\"12\">probe success rate (1 s buckets)</text>\n",
      kLeft + 4, lat_top + 14, kLeft + 4, rate_top + 14);
  for (int i = 0; i <= 10; ++i) {
    const double t = end * i / 10;
    s += fmt::format(
        "<text x=\"{:.1f}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{:.1f}s</text>\n",
        x(t), rate_top + kPanel + 14, t);
  }
  // Probes: latency points (failures as red crosses) and success rate per 1 s bucket.
  std::size_t index = 0;
  for (const json& p : j["probes"]) {
    const char* color = kColors[index++ % std::size(kColors)];
    std::string points;
    auto flush_latency = [&](std::string& segment) {
      if (segment.empty()) return;
      s += fmt::format(
          "<polyline class=\"probe-latency\" data-probe=\"{}\" points=\"{}\" fill=\"none\" "
          "stroke=\"{}\" stroke-width=\"1\"/>\n",
          esc(str(p, "name")), segment, color);
      segment.clear();
    };
    std::vector<std::pair<int, int>> buckets(static_cast<std::size_t>(end) + 1);
    for (const json& r : p["results"]) {
      const double t = num(r, "t"), ms = num(r, "latency_ms");
      const bool ok = r.value("ok", false);
      if (ok) {
        points += fmt::format("{:.1f},{:.1f} ", x(t), y_lat(ms));
      } else {
        // A failure breaks the line: no latency is drawn across the time nothing succeeded.
        flush_latency(points);
        s += fmt::format(
            "<path class=\"probe-failure\" d=\"M{0:.1f} {1:.1f}l4 4m0 -4l-4 4\" "
            "stroke=\"#d62728\"><title>{2} failed at {3:.3f}s: {4}</title></path>\n",
            x(t) - 2, y_lat(ms) - 2, esc(str(p, "name")), t, esc(str(r, "reason")));
      }
      auto& b = buckets[std::min(buckets.size() - 1, static_cast<std::size_t>(t))];
      ++b.first;
      b.second += ok;
    }
    flush_latency(points);
    std::string rate;
    for (std::size_t k = 0; k < buckets.size(); ++k)
      if (buckets[k].first > 0)
        rate += fmt::format("{:.1f},{:.1f} ", x(static_cast<double>(k) + 0.5),
                            y_rate(static_cast<double>(buckets[k].second) / buckets[k].first));
    s += fmt::format(
        "<polyline class=\"probe-success\" data-probe=\"{}\" points=\"{}\" fill=\"none\" "
        "stroke=\"{}\" stroke-width=\"2\"/>\n",
        esc(str(p, "name")), rate, color);
    s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"{}\">&#9632; {}</text>\n",
                     kWidth - kRight - 150, lat_top + 14 + 13 * static_cast<double>(index - 1),
                     color, esc(str(p, "name")));
  }
  // The steady state's first holding, steps and service events.
  if (j["t0"].is_number())
    s += fmt::format(
        "<line class=\"t0\" x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1}\" y2=\"{2}\" stroke=\"#2ca02c\" "
        "stroke-dasharray=\"2 2\"><title>steady state first held</title></line>\n",
        x(num(j, "t0")), lat_top, rate_top + kPanel);
  for (const json& st : j["steps"]) {
    const double t = num(st, "t");
    s += fmt::format(
        "<line class=\"step\" x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1}\" y2=\"{2}\" "
        "stroke=\"#333\" stroke-dasharray=\"4 3\"><title>step {3}: {4}</title></line>"
        "<text x=\"{0:.1f}\" y=\"{5}\" font-size=\"10\" text-anchor=\"middle\">{3}</text>\n",
        x(t), lat_top, rate_top + kPanel, st.value("index", 0) + 1, esc(str(st, "action")),
        rate_top + kPanel + 28);
  }
  for (const json& ev : j["service_events"])
    s += fmt::format(
        "<circle class=\"service-event\" cx=\"{:.1f}\" cy=\"{}\" r=\"4\" fill=\"#7f7f7f\"><title>"
        "{:.3f}s {} {} {}</title></circle>\n",
        x(num(ev, "t")), rate_top + kPanel + 40, num(ev, "t"), esc(str(ev, "service")),
        esc(str(ev, "kind")), esc(str(ev, "detail")));
  if (j["stop"].is_object())
    s += fmt::format(
        "<line class=\"stop\" x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1}\" y2=\"{2}\" "
        "stroke=\"#d62728\" "
        "stroke-width=\"2\"><title>emergency stop</title></line>\n",
        x(num(j["stop"], "t")), lat_top, rate_top + kPanel);
  s += "</svg>\n";
  return s;
}

std::string ms_text(const json& v) {
  return v.is_number() ? fmt::format("{:.0f} ms", v.get<double>()) : std::string("-");
}

}  // namespace

std::string iso_time(std::int64_t realtime_ns) {
  const std::time_t seconds = static_cast<std::time_t>(realtime_ns / 1'000'000'000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:09d}Z", buffer, realtime_ns % 1'000'000'000);
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc | std::ios::binary);
  out << text;
  if (!out.flush())
    throw_control_error(ErrorKind::kSystem, kBadInput,
                        fmt::format("cannot write {}: {}", path, std::strerror(errno)));
}

std::string html_report(const json& j) {
  const int code = j.value("exit", 2);
  const char* verdict = code == 0   ? "held"
                        : code == 1 ? "not-held"
                        : code == 3 ? "stopped"
                                    : "error";
  std::string h = fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{0}</title>\n"
      "<style>body{{font:14px system-ui,sans-serif;margin:2em;max-width:1100px}}"
      "table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;"
      "text-align:left}}.verdict{{padding:.5em 1em;font-weight:bold}}.held{{background:#dfd}}"
      ".not-held,.error{{background:#fdd}}.stopped{{background:#fec}}pre{{background:#f6f6f6;"
      "padding:.5em;overflow:auto}}</style></head><body>\n"
      "<h1>{0}</h1>\n<p class=\"verdict {1}\" id=\"outcome\">{2} (exit {3})</p>\n"
      "<p>{4} &middot; started {5} &middot; seed {6}</p>\n",
      esc(j.value("title", std::string("experiment"))), verdict, esc(str(j, "outcome")), code,
      esc(str(j, "file")), esc(str(j, "time")), esc(str(j, "seed")));
  h += "<h2>Timeline</h2>\n" + timeline(j);
  h += "<h2>Verdicts</h2>\n<table id=\"verdicts\"><tr><th>clause</th><th>probe</th><th>limits"
       "</th><th>result</th><th>measured</th></tr>\n";
  for (const json& c : j.value("clauses", json::array()))
    h += fmt::format(
        "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
        "</tr>\n",
        c.value("held", false) ? "held" : "not-held", esc(str(c, "kind")), esc(str(c, "probe")),
        esc(str(c, "limits")), c.value("held", false) ? "held" : "NOT HELD", esc(str(c, "value")));
  h += "</table>\n";
  if (j["stop"].is_object())
    h += fmt::format(
        "<p class=\"verdict stopped\" id=\"stop\">Emergency stop at {:.3f}s: {}; "
        "every fault off {} after the crossing result.</p>\n",
        num(j["stop"], "t"), esc(str(j["stop"], "reason")), ms_text(j["stop"]["reaction_ms"]));
  const json measures = j.value("measures", json::object());
  h += "<h2>Impact (time to detect) and recovery (time to recover)</h2>\n<table id=\"impact\">"
       "<tr><th>step</th><th>at</th><th>action</th><th>first failed probe after</th></tr>\n";
  for (const json& m : measures.value("impact", json::array()))
    h += fmt::format("<tr><td>{}</td><td>{:.3f}s</td><td>{}</td><td>{} {}</td></tr>\n",
                     m.value("step", 0) + 1, num(m, "t"), esc(str(m, "action")),
                     ms_text(m["impact_ms"]), esc(str(m, "probe")));
  h += "</table>\n<table id=\"recovery\"><tr><th>faults lifted at</th><th>steady state again "
       "after</th></tr>\n";
  for (const json& m : measures.value("recovery", json::array()))
    h += fmt::format("<tr><td>{:.3f}s</td><td>{}</td></tr>\n", num(m, "lifted_at"),
                     ms_text(m["recovery_ms"]));
  // Why probes failed: each distinct reason, how often, first and last seen.
  h += "</table>\n<h2>Probe failures</h2>\n<table id=\"failures\"><tr><th>probe</th><th>reason"
       "</th><th>count</th><th>first</th><th>last</th></tr>\n";
  for (const json& p : j["probes"]) {
    std::vector<std::string> order;
    std::map<std::string, std::tuple<int, double, double>> reasons;
    for (const json& r : p["results"]) {
      if (r.value("ok", true)) continue;
      const std::string reason = str(r, "reason");
      auto [it, fresh] = reasons.try_emplace(reason, 0, num(r, "t"), 0.0);
      if (fresh) order.push_back(reason);
      ++std::get<0>(it->second);
      std::get<2>(it->second) = num(r, "t");
    }
    for (const auto& reason : order) {
      const auto& [count, first, last] = reasons[reason];
      h += fmt::format(
          "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.3f}s</td><td>{:.3f}s</td></tr>\n",
          esc(str(p, "name")), esc(reason), count, first, last);
    }
  }
  h += "</table>\n<h2>Steps</h2>\n<table id=\"steps\"><tr><th>#</th><th>planned</th><th>ran at"
       "</th><th>action</th><th>result</th></tr>\n";
  for (const json& st : j["steps"])
    h += fmt::format(
        "<tr><td>{}</td><td>+{:.3f}s</td><td>{:.3f}s</td><td>{}</td><td>{}</td>"
        "</tr>\n",
        st.value("index", 0) + 1, num(st, "at"), num(st, "t"), esc(str(st, "action")),
        st.value("ok", false) ? "ok" : esc("failed: " + str(st, "error")));
  h += "</table>\n<h2>Faults</h2>\n<table id=\"faults\"><tr><th>fault</th><th>on</th><th>off"
       "</th><th>injected</th></tr>\n";
  for (const json& f : j["faults"])
    h += fmt::format("<tr><td>{}:{}</td><td>{:.3f}s</td><td>{}</td><td>{}</td></tr>\n",
                     esc(str(f, "service")), esc(str(f, "fault")), num(f, "start"),
                     f["end"].is_number() ? fmt::format("{:.3f}s", num(f, "end")) : "-",
                     f.value("injected", 0));
  h += "</table>\n<h2>Service events</h2>\n<table id=\"events\"><tr><th>at</th><th>service</th>"
       "<th>event</th><th>detail</th></tr>\n";
  for (const json& ev : j["service_events"])
    h += fmt::format("<tr><td>{:.3f}s</td><td>{}</td><td>{}</td><td>{}</td></tr>\n", num(ev, "t"),
                     esc(str(ev, "service")), esc(str(ev, "kind")), esc(str(ev, "detail")));
  h += "</table>\n<h2>Rollbacks</h2>\n<ul>\n";
  for (const json& r : j.value("rollbacks", json::array())) {
    std::string command;
    for (const json& a : r["command"])
      command += (command.empty() ? "" : " ") + a.get<std::string>();
    h += fmt::format("<li><code>{}</code>: {}</li>\n", esc(command),
                     r.value("ok", false) ? "ok" : esc(str(r, "reason")));
  }
  h += "</ul>\n<h2>Policies</h2>\n";
  for (const json& s : j["services"])
    h += fmt::format("<h3>{} <small>(session {}, seed {})</small></h3>\n<pre>{}</pre>\n",
                     esc(str(s, "name")), esc(str(s, "session")), esc(str(s, "seed")),
                     str(s, "policy").empty() ? "(no policy: no faults until a step adds them)"
                                              : esc(str(s, "policy")));
  h += fmt::format("<h2>Replay</h2>\n<pre id=\"replay\">{}</pre>\n</body></html>\n",
                   esc(str(j, "replay")));
  return h;
}

std::string junit_report(const json& j) {
  const json clauses = j.value("clauses", json::array());
  std::string cases;
  int tests = 0, failures = 0;
  auto add = [&](const std::string& name, bool ok, const std::string& message) {
    ++tests;
    cases +=
        fmt::format("    <testcase classname=\"{}\" name=\"{}\">", esc(str(j, "title")), esc(name));
    if (!ok) {
      ++failures;
      cases += fmt::format("<failure message=\"{}\"/>", esc(message));
    }
    cases += "</testcase>\n";
  };
  for (const json& c : clauses)
    add(fmt::format("{} {} {}", str(c, "kind"), str(c, "probe"), str(c, "limits")),
        c.value("held", false), str(c, "value"));
  if (j["stop"].is_object()) add("emergency stop", false, str(j["stop"], "reason"));
  if (tests == 0) add("experiment", j.value("exit", 2) == 0, str(j, "outcome"));
  return fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"{}\" "
      "tests=\"{}\" failures=\"{}\" errors=\"0\" time=\"{:.3f}\">\n{}  </testsuite>\n"
      "</testsuites>\n",
      esc(str(j, "title")), tests, failures, num(j, "end"), cases);
}

void render_report(const std::string& journal, const std::string& html) {
  std::ifstream in(journal);
  if (!in)
    throw_control_error(ErrorKind::kUsage, kBadInput,
                        fmt::format("{}: {}", journal, std::strerror(errno)));
  json j;
  std::string page;
  try {
    j = json::parse(in);
    if (!j.is_object() || j.value("version", 0) != 1 || !j.contains("probes"))
      throw std::runtime_error("not an experiment journal (version 1)");
    page = html_report(j);
  } catch (const std::exception& e) {
    throw_control_error(ErrorKind::kUsage, kBadInput, fmt::format("{}: {}", journal, e.what()));
  }
  write_text(html, page);
}

}  // namespace faultline::experiment
