package config

// DefaultRampartRules is WAFPolicy.RampartRules when omitted: Rampart's
// own rules run on top of the CRS.
const DefaultRampartRules = true

// RampartRuleGroups are the groups of Rampart's own WAF rules, the names
// WAFPolicy.RampartRulesDisabled accepts (docs/waf-rules.md):
//   - decode: decoded forms of arguments, JSON values and cookies;
//   - headers: values of non-standard request headers;
//   - path: path segments and matrix parameters;
//   - uploads: multipart field names and file names;
//   - graphql: string arguments of GraphQL queries;
//   - libinjection: libinjection SQLi and XSS on the forms above;
//   - xxe: external entities, DOCTYPE declarations, XInclude;
//   - ssti: server-side template expressions;
//   - nosql: MongoDB query operators and JavaScript;
//   - ldap: LDAP filter injection;
//   - cmdi: shell command injection;
//   - sqli: SQL and XPath injection libinjection misses;
//   - redirect: open redirects;
//   - traversal: path traversal with separators or dots in escapes no
//     decoder undoes (etc%c0%9vpasswd, ..%c1%8s..%c1%8s);
//   - api: PUT, PATCH, DELETE and WebDAV's methods, +json and +xml media
//     types, CSP reports, text/plain and line-delimited JSON scored
//     nothing by the CRS (911100 and 920420 still match and are logged),
//     such bodies parsed;
//   - prose: CRS rules scored nothing for values that are prose, filter
//     expressions (JQL, OData), GraphQL documents, binary data,
//     spreadsheet formulas or inert XML documents, whose shape the CRS
//     mistakes for attacks, for a lone detection on text with a little
//     code in it, and for command findings alone on multi-line messages.
var RampartRuleGroups = []string{"decode", "headers", "path", "uploads", "graphql", "prose", "api", "libinjection", "xxe", "ssti", "nosql", "ldap", "cmdi", "sqli", "redirect", "traversal"}
