import Mustache
import SwitchboardCore

/// Renders message templates (`MessageTemplate`) with hummingbird-project/swift-mustache.
///
/// - The subject and the text body are rendered as text (nothing escaped: they are not HTML); the `html` part as
///   HTML (each value HTML-escaped, as `{{name}}` does in Mustache; `{{{name}}}` leaves a value as it is).
/// - Strict: every name a part uses must be in the variables (a `{{name}}` with a value that is not null; a
///   section `{{#name}}`/`{{^name}}` with the key present, false, null or [] hiding it), else
///   ``Problem/missingVariable(_:part:)``; no silent blank. Inside a section a name may also come from the
///   section's object (or the objects of its list); inside a section that is hidden, nothing is needed.
/// - Partials, inheritance and delimiter changes are refused when a template is saved: they would render blanks
///   (there is no partial library) or hide names from the check.
public enum TemplateRenderer {
    /// What a template becomes for one message.
    public struct Rendered: Sendable, Hashable {
        public var subject: String?
        public var body: String
        public var html: String?
    }

    public enum Problem: Error, Sendable, Hashable {
        /// The part (`subject`, `body`, `html`) is not a template we render: why, where.
        case invalidTemplate(String, part: String)
        /// A name the part uses that the variables lack.
        case missingVariable(String, part: String)
    }

    /// One part, compiled, with the names it uses.
    public struct Part: Sendable {
        let template: MustacheTemplate
        let tags: [Tag]
    }

    /// A template's parts, compiled (``compile(_:)``); kept by `TemplateLibrary` per name, locale and version.
    public struct Compiled: Sendable {
        public let subject: Part?
        public let body: Part
        public let html: Part?
    }

    enum Tag: Sendable, Hashable {
        case variable(String)
        case section(String)
        case inverted(String)
        case close
    }

    /// Parses `t`'s parts; the first that does not compile is the problem.
    public static func compile(_ t: MessageTemplate) -> Result<Compiled, Problem> {
        compile(subject: t.subject, body: t.body, html: t.html)
    }

    public static func compile(subject: String?, body: String, html: String?) -> Result<Compiled, Problem> {
        do {
            let s = try subject.map { try part($0, name: "subject", html: false) }
            let b = try part(body, name: "body", html: false)
            let h = try html.map { try part($0, name: "html", html: true) }
            return .success(Compiled(subject: s, body: b, html: h))
        } catch let p as Problem {
            return .failure(p)
        } catch {
            return .failure(.invalidTemplate("\(error)", part: "body"))
        }
    }

    /// The text parts start with this pragma, on a line of its own (so it leaves no line behind): their values
    /// are not HTML-escaped.
    static let textPragma = "{{%CONTENT_TYPE:TEXT}}\n"

    static func part(_ source: String, name: String, html: Bool) throws -> Part {
        let tags = try scan(source, part: name)
        do {
            let template = try MustacheTemplate(string: html ? source : textPragma + source)
            return Part(template: template, tags: tags)
        } catch let e as MustacheTemplate.ParserError {
            let line = e.context.lineNumber - (html ? 0 : 1)
            throw Problem.invalidTemplate("\(reason(e.error)) at line \(line), column \(e.context.columnNumber)", part: name)
        }
    }

    static func reason(_ error: any Error) -> String {
        switch error as? MustacheTemplate.Error {
        case .sectionCloseNameIncorrect?: "a section is closed by a {{/name}} that does not match its opening tag"
        case .unfinishedName?: "a tag is not closed, or its name is not valid"
        case .expectedSectionEnd?: "a section is never closed (missing {{/name}})"
        case .invalidSetDelimiter?: "a delimiter change is malformed"
        case .invalidConfigVariableSyntax?, .unrecognisedConfigVariable?: "a {{% pragma}} is not one we know"
        default: "\(error)"
        }
    }

    /// The tags of `source`, in order, for the strict check; refuses what we do not render.
    static func scan(_ source: String, part: String) throws -> [Tag] {
        let b = Array(source.utf8)
        let open = UInt8(ascii: "{"), close = UInt8(ascii: "}")
        func find(_ pattern: [UInt8], from: Int) -> Int? {
            var i = from
            while i + pattern.count <= b.count {
                if Array(b[i..<(i + pattern.count)]) == pattern { return i }
                i += 1
            }
            return nil
        }
        func name(_ bytes: ArraySlice<UInt8>) -> String {
            var s = String(decoding: bytes, as: UTF8.self).trimmingBlanks()
            // A transform (`uppercased(name)`): the name is the innermost argument.
            if let p = s.lastIndex(of: "(") {
                s = String(s[s.index(after: p)...].prefix { $0 != ")" }).trimmingBlanks()
            }
            return s
        }
        var tags: [Tag] = []
        var i = 0
        while i + 1 < b.count {
            guard b[i] == open, b[i + 1] == open else {
                i += 1
                continue
            }
            if i + 2 < b.count, b[i + 2] == open {
                guard let end = find([close, close, close], from: i + 3) else { break }
                tags.append(.variable(name(b[(i + 3)..<end])))
                i = end + 3
                continue
            }
            guard let end = find([close, close], from: i + 2) else { break }
            let content = b[(i + 2)..<end].drop { $0 == 0x20 || $0 == 0x09 }
            i = end + 2
            guard let sigil = content.first else { continue }
            let rest = content.dropFirst()
            switch sigil {
            case UInt8(ascii: "!"), UInt8(ascii: "%"): continue
            case UInt8(ascii: "#"): tags.append(.section(name(rest)))
            case UInt8(ascii: "^"): tags.append(.inverted(name(rest)))
            case UInt8(ascii: "/"): tags.append(.close)
            case UInt8(ascii: "&"): tags.append(.variable(name(rest)))
            case UInt8(ascii: ">"): throw Problem.invalidTemplate("partials ({{>name}}) are not supported", part: part)
            case UInt8(ascii: "<"), UInt8(ascii: "$"): throw Problem.invalidTemplate("template inheritance ({{<name}}, {{$name}}) is not supported", part: part)
            case UInt8(ascii: "="): throw Problem.invalidTemplate("delimiter changes ({{=<% %>=}}) are not supported", part: part)
            default: tags.append(.variable(name(content)))
            }
        }
        return tags
    }

    /// The first name `tags` use that `variables` lack, or nil.
    static func missing(_ tags: [Tag], in variables: [String: JSONValue]) -> String? {
        var contexts: [[JSONValue]] = [[.object(variables)]]
        func resolve(_ name: String) -> JSONValue? {
            let local = name.hasPrefix(".")
            let segments = name.split(separator: ".").map(String.init)
            guard let first = segments.first else { return contexts.last?.first ?? .null }
            for level in contexts.reversed() {
                for candidate in level {
                    guard var value = candidate[first] else { continue }
                    for segment in segments.dropFirst() {
                        guard let next = value[segment] else { return nil }
                        value = next
                    }
                    return value
                }
                if local { return nil }
            }
            return nil
        }
        // Tags inside a section that will not render (a falsy value: false, null, []; an inverted section of a
        // truthy one) are not checked: they print nothing. `skipping` counts the open sections from the first such.
        var skipping = 0
        func falsy(_ v: JSONValue) -> Bool { v == .null || v == .bool(false) || v == .array([]) }
        for tag in tags {
            if skipping > 0 {
                switch tag {
                case .section, .inverted: skipping += 1
                case .close: skipping -= 1
                case .variable: break
                }
                continue
            }
            switch tag {
            case .variable(let name):
                if name.isEmpty || name == "." { continue }
                guard let v = resolve(name), v != .null else { return name }
            case .section(let name):
                if name.isEmpty { contexts.append([]); continue }
                guard let v = resolve(name) else { return name }
                switch v {
                case _ where falsy(v): skipping = 1
                case .object: contexts.append([v])
                case .array(let items): contexts.append(items)
                default: contexts.append([])
                }
            case .inverted(let name):
                if name.isEmpty { contexts.append([]); continue }
                guard let v = resolve(name) else { return name }
                if falsy(v) { contexts.append([]) } else { skipping = 1 }
            case .close:
                if contexts.count > 1 { contexts.removeLast() }
            }
        }
        return nil
    }

    /// Renders `compiled` with `variables`: the first missing name is the problem.
    public static func render(_ compiled: Compiled, variables: [String: JSONValue]) -> Result<Rendered, Problem> {
        let parts: [(Part?, String)] = [(compiled.subject, "subject"), (compiled.body, "body"), (compiled.html, "html")]
        for (part, name) in parts {
            if let part, let missing = missing(part.tags, in: variables) { return .failure(.missingVariable(missing, part: name)) }
        }
        let context = variables.compactMapValues(mustacheValue)
        return .success(Rendered(
            subject: compiled.subject.map { $0.template.render(context) }, body: compiled.body.template.render(context),
            html: compiled.html.map { $0.template.render(context) }))
    }

    /// A JSON value as Mustache reads it: numbers as JSON writes them (`42`, not `42.0`), null as absent.
    static func mustacheValue(_ v: JSONValue) -> Any? {
        switch v {
        case .null: return nil
        case .bool(let b): return b
        case .number(let n): return n.rounded() == n && abs(n) < 9_007_199_254_740_992 ? String(Int64(n)) : String(n)
        case .string(let s): return s
        case .array(let items): return items.compactMap(mustacheValue)
        case .object(let o): return o.compactMapValues(mustacheValue)
        }
    }
}

extension String {
    fileprivate func trimmingBlanks() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }), let last = scalars.lastIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        return String(scalars[first...last])
    }
}
