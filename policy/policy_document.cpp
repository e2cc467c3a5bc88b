// Policy documents and fault snippets: the top-level keys and tables ([log], [safety],
// [durability], [target], [[fault]]) walked in source order, each table's keys looked up in its
// key table, and every error collected (one per fault, the rest per key) and sorted by position.
#include <algorithm>
#include <exception>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "policy/policy_compile.h"

namespace faultline::policy_detail {
namespace {

FaultSpec compile_fault_table(const toml::table& table, const Warnings& warnings,
                              std::vector<Policy::NaturalError>* natural = nullptr) {
  FaultDraft d{default_fault_spec(), {0, 0}};
  for (const Entry& e : entries_in_source_order(table)) compile_file_fault_key(d, e);
  FaultSource src{&table};
  check_required_keys(d.spec, src);
  std::vector<Policy::NaturalError> chosen;
  choose_natural_error(d, src, &chosen);
  validate_fault(d, src, warnings);
  if (natural) natural->insert(natural->end(), chosen.begin(), chosen.end());
  return d.spec;
}

// ---- documents --------------------------------------------------------------------------

struct FaultName {
  std::string name;
  Position at;
};

struct Document {
  Policy policy;
  std::vector<FaultName> names;  // for duplicate detection
  std::vector<CompileError> errors;
};

// Runs `compile`; an error it throws is recorded and the caller goes on with the next part.
template <typename F>
void collecting(Document& doc, F&& compile) {
  try {
    compile();
  } catch (const CompileError& err) {
    doc.errors.push_back(err);
  }
}

using DocumentKeyCompiler = void (*)(Document&, const Warnings&, const Entry&);
struct DocumentKey {
  std::string_view name;
  DocumentKeyCompiler compile;
};

void compile_keys_of(Document& doc, const Warnings& w, const Entry& e,
                     std::span<const DocumentKey> keys, std::string_view requirement) {
  const toml::table* table = e.value->as_table();
  if (!table) fail_value(e, requirement);
  for (const Entry& sub : entries_in_source_order(*table))
    collecting(doc, [&] { find_key(keys, sub).compile(doc, w, sub); });
}

void compile_log_path(Document& doc, const Warnings&, const Entry& e) {
  const std::string& path = get_string(e);
  if (path.empty())
    fail(e.value_at(), "'path' must not be empty (leave [log] path out for no log)");
  if (std::optional<std::string> problem = log_path_problem(path, "'path'"))
    fail(e.value_at(), *problem);
  doc.policy.log_path = path;
}

void compile_log_stderr(Document& doc, const Warnings&, const Entry& e) {
  doc.policy.log_stderr = get_bool(e);
}

void compile_log_max_rate(Document& doc, const Warnings&, const Entry& e) {
  doc.policy.log_max_rate = get_integer_at_least(e, 1);
}

void compile_log_max_size(Document& doc, const Warnings&, const Entry& e) {
  const std::uint64_t size = get_size(e);
  if (size < 1) fail_value(e, ">= 1");
  doc.policy.log_max_size = size;
}

void compile_ttl(Document& doc, const Warnings&, const Entry& e) {
  std::int64_t ns = get_duration(e);
  if (ns == 0) fail_value(e, "longer than 0");
  doc.policy.ttl_ns = ns;
}

void compile_max_faults(Document& doc, const Warnings&, const Entry& e) {
  doc.policy.max_faults = get_integer_at_least(e, 1);
}

void compile_target_io_uring(Document& doc, const Warnings&, const Entry& e) {
  const std::string& value = get_string(e);
  if (value != "allow" && value != "deny") fail_value(e, "\"allow\" or \"deny\"");
  doc.policy.deny_io_uring = value == "deny";
}

constexpr DocumentKey kLogKeys[] = {{"path", compile_log_path},
                                    {"stderr", compile_log_stderr},
                                    {"max_rate", compile_log_max_rate},
                                    {"max_size", compile_log_max_size}};
// [durability]: which paths a power cut reverts, and how (policy.md, "Durability").
// Members may chdir, and the undo data is kept by absolute path: a relative glob would track
// different files in each process.
void compile_durability_path(Document& doc, const Warnings&, const Entry& e) {
  for (const SelectorItem& item : selector_items(e)) {
    std::string_view glob = item.text;
    if (glob.starts_with('!')) glob.remove_prefix(1);
    if (!glob.empty() && !glob.starts_with('/'))
      fail(item.at, "[durability] 'path' must be absolute (got " + quoted(item.text) +
                        "; write the full path, e.g. \"/var/lib/db/*\")");
  }
  compile_glob(doc.policy.durability.path, e);
}

void compile_on_fsync_error(Document& doc, const Warnings&, const Entry& e) {
  const std::string& value = get_string(e);
  if (value != "drop" && value != "keep") fail_value(e, "\"drop\" or \"keep\"");
  doc.policy.durability.keep_on_fsync_error = value == "keep";
}

void compile_torn(Document& doc, const Warnings&, const Entry& e) {
  doc.policy.durability.torn = get_bool(e);
}

constexpr DocumentKey kDurabilityKeys[] = {{"path", compile_durability_path},
                                           {"on_fsync_error", compile_on_fsync_error},
                                           {"torn", compile_torn}};

// torn and on_fsync_error say how tracked files lose data: without a path nothing is tracked,
// and a policy that sets them would silently lose nothing.
void compile_durability(Document& doc, const Warnings& w, const Entry& e) {
  compile_keys_of(doc, w, e, kDurabilityKeys, "a table ([durability])");
  const toml::table* table = e.value->as_table();
  if (!table || table->contains("path")) return;
  for (std::string_view key : {std::string_view{"torn"}, std::string_view{"on_fsync_error"}})
    if (table->contains(key))
      fail(e.key_at, "[durability] sets " + quoted(key) +
                         " but no 'path': nothing is tracked, so a power cut would lose "
                         "nothing (add path = \"/your/data/*\")");
}

void compile_target_backend(Document& doc, const Warnings&, const Entry& e) {
  const std::string& name = get_string(e);
  if (name == "auto")
    doc.policy.backend = Backend::kAuto;
  else if (name == "preload")
    doc.policy.backend = Backend::kPreload;
  else if (name == "seccomp")
    doc.policy.backend = Backend::kSeccomp;
  else
    fail_value(e, "\"auto\", \"preload\" or \"seccomp\"");
}

// [target]: one key per line, so that keys added side by side merge cleanly.
constexpr DocumentKey kTargetKeys[] = {
    {"backend", compile_target_backend},
    {"io_uring", compile_target_io_uring},
};
constexpr DocumentKey kSafetyKeys[] = {{"ttl", compile_ttl}, {"max_faults", compile_max_faults}};

void compile_log(Document& doc, const Warnings& w, const Entry& e) {
  compile_keys_of(doc, w, e, kLogKeys, "a table ([log])");
}

void compile_target(Document& doc, const Warnings& w, const Entry& e) {
  compile_keys_of(doc, w, e, kTargetKeys, "a table ([target])");
}

void compile_safety(Document& doc, const Warnings& w, const Entry& e) {
  compile_keys_of(doc, w, e, kSafetyKeys, "a table ([safety])");
}

void compile_version(Document&, const Warnings&, const Entry& e) {
  std::int64_t version = get_integer(e);
  if (version != 1)
    fail(e.value_at(), "unsupported policy version " + std::to_string(version) +
                           " (this faultline reads version 1)");
}

void compile_seed(Document& doc, const Warnings&, const Entry& e) {
  doc.policy.seed = get_integer_at_least(e, 0);
  doc.policy.has_seed = true;
}

void check_unique_name(Document& doc, const toml::table& table, const FaultSpec& spec) {
  Position at = FaultSource{&table}.value_at("name");
  for (const FaultName& seen : doc.names)
    if (seen.name == spec.name)
      fail(at, "duplicate fault name " + quoted(spec.name) + " (first defined at line " +
                   std::to_string(seen.at.line) + ")");
  doc.names.push_back(FaultName{spec.name, at});
}

void compile_faults(Document& doc, const Warnings& w, const Entry& e) {
  const toml::array* list = e.value->as_array();
  if (!list || !list->is_array_of_tables()) fail_value(e, "an array of tables ([[fault]])");
  std::size_t count = 0;
  for (const toml::node& item : *list) {
    const toml::table& table = *item.as_table();
    if (++count > kMaxFaults)
      fail(table.source().begin,
           "too many faults (a session holds at most " + std::to_string(kMaxFaults) + ")");
    // One error per fault: its later keys may only be wrong because of the first.
    collecting(doc, [&] {
      FaultSpec spec = compile_fault_table(table, w, &doc.policy.natural_errors);
      check_unique_name(doc, table, spec);
      doc.policy.faults.push_back(spec);
    });
  }
}

// One entry a line (clang-format would pack them): tables are added here one line each.
// clang-format off
constexpr DocumentKey kTopKeys[] = {{"version", compile_version},
                                    {"seed", compile_seed},
                                    {"log", compile_log},
                                    {"safety", compile_safety},
                                    {"durability", compile_durability},
                                    {"target", compile_target},
                                    {"fault", compile_faults}};
// clang-format on

// The version is checked before anything else: a file written for another version may use
// keys this one does not know, and "unknown key" would hide the real problem.
void check_version(Document& doc, const Warnings& w, const std::vector<Entry>& entries) {
  for (const Entry& e : entries)
    if (e.key == "version") return compile_version(doc, w, e);
  fail(Position{1, 1}, "missing 'version = 1' (the policy format version is required)");
}

void check_snippet_key(const Entry& e) {
  if (e.key != "fault")
    fail(e.key_at, "only [[fault]] tables belong in a fault snippet, not " + quoted(e.key));
}

// Every error goes to `errors`; the policy returned is meaningful only when there is none.
Policy compile_document(const toml::table& root, DocumentKind kind, const std::string& source,
                        std::vector<CompileError>* errors) {
  Document doc;
  Warnings warnings{&source, &doc.policy.warnings};
  std::vector<Entry> entries = entries_in_source_order(root);
  if (kind == DocumentKind::kPolicy) check_version(doc, warnings, entries);
  for (const Entry& e : entries)
    collecting(doc, [&] {
      if (kind == DocumentKind::kSnippet) check_snippet_key(e);
      find_key(std::span<const DocumentKey>(kTopKeys), e).compile(doc, warnings, e);
    });
  if (kind == DocumentKind::kSnippet && doc.policy.faults.empty() && doc.errors.empty())
    fail(Position{1, 1}, "the snippet has no [[fault]] table");
  // [[fault]] tables are one top-level key: an error in a table after them comes later in
  // the list than in the file. Sorted, stably, so each fault's errors keep their order.
  std::stable_sort(
      doc.errors.begin(), doc.errors.end(), [](const CompileError& a, const CompileError& b) {
        return std::pair(a.where.line, a.where.column) < std::pair(b.where.line, b.where.column);
      });
  *errors = std::move(doc.errors);
  return std::move(doc.policy);
}

PolicyError make_error(const std::string& source, Position at, std::string message,
                       std::string suggestion = {}) {
  return PolicyError{source, static_cast<int>(at.line), static_cast<int>(at.column),
                     std::move(message), std::move(suggestion)};
}

}  // namespace

CompileResult compile_text(std::string_view text, const std::string& source, DocumentKind kind) {
  CompileResult result;
  if (auto stray = detail::find_stray_non_ascii(text)) {
    result.errors.push_back(make_error(source,
                                       Position{static_cast<toml::source_index>(stray->line),
                                                static_cast<toml::source_index>(stray->column)},
                                       "non-ASCII character outside a string or comment"));
    result.error = result.errors.front();
    return result;
  }
  try {
    toml::table root = toml::parse(text, std::string_view(source));
    std::vector<CompileError> errors;
    Policy policy = compile_document(root, kind, source, &errors);
    for (const CompileError& err : errors)
      result.errors.push_back(make_error(source, err.where, err.message, err.suggestion));
    if (errors.empty()) result.policy = std::move(policy);
  } catch (const toml::parse_error& err) {
    // toml++ stops at the first syntax error: nothing after it can be checked.
    result.errors.push_back(make_error(source, err.source().begin,
                                       "TOML syntax error: " + std::string(err.description())));
  } catch (const CompileError& err) {
    result.errors.push_back(make_error(source, err.where, err.message, err.suggestion));
  } catch (const std::exception& err) {
    // The shim compiles inside the target's constructor: nothing may escape and kill it.
    result.errors.push_back(
        make_error(source, Position{}, std::string("internal error: ") + err.what()));
  }
  if (!result.errors.empty()) {
    result.policy.reset();
    result.error = result.errors.front();
  }
  return result;
}

}  // namespace faultline::policy_detail
