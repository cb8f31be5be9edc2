import HTTPTypes
import Hummingbird
import SwitchboardApp
import SwitchboardCore

/// Message templates (`/api/v1/templates`): saved (each save of a name in a locale is its next version), listed,
/// read with every version, archived, previewed; and used by a message through `data.templateId`
/// (``applyTemplate(_:)``, the first step of ``admit(_:keyID:)``). Templates are configuration: saving and
/// archiving take the `admin` scope; reading and previewing (which sends nothing) `read`.
extension API {
    /// The template endpoints (part of ``routes()``).
    func templateRoutes() -> [Route] {
        [
            Route(.post, "/api/v1/templates", scope: .admin) { request, context in try await self.saveTemplate(request, keyID: context.identity?.id) },
            Route(.get, "/api/v1/templates", scope: .read) { request, _ in try await self.listTemplates(request) },
            Route(.get, "/api/v1/templates/:name", scope: .read) { request, context in try await self.showTemplate(request, context.parameters.get("name") ?? "") },
            Route(.delete, "/api/v1/templates/:name", scope: .admin) { _, context in try await self.archiveTemplate(context.parameters.get("name") ?? "") },
            Route(.post, "/api/v1/templates/:name/preview", scope: .read) { request, context in try await self.previewTemplate(request, context.parameters.get("name") ?? "") },
        ]
    }

    /// Largest body of a template request: three parts of up to 256 KiB and their JSON escaping.
    static let maxTemplateBody = 1 << 20

    var templateLibrary: TemplateLibrary {
        get throws {
            guard let templates else {
                throw APIError(.notFound, code: "templates_disabled", message: "This server has no template store.")
            }
            return templates
        }
    }

    static func render(_ t: MessageTemplate) -> JSONValue {
        .object([
            "name": .string(t.name), "channel": .string(t.channel.rawValue), "locale": .string(t.locale), "version": .number(Double(t.version)),
            "subject": Render.optional(t.subject), "body": .string(t.body), "html": Render.optional(t.html), "archived": .bool(t.archived),
            "createdAt": .string(t.createdAt.iso8601), "keyId": Render.optional(t.keyID),
        ])
    }

    /// A template part: a string of at most 256 KiB (`required`: present and not blank).
    static func templatePart(_ v: JSONValue?, field: String, required: Bool) throws -> String? {
        switch v {
        case nil, .null?:
            if required { throw APIError(.badRequest, code: "invalid_field", message: "\(field) is required: Mustache text.", field: field) }
            return nil
        case .string(let s)? where s.utf8.count <= TemplateRules.maxPartBytes:
            if required, s.allSatisfy(\.isWhitespace) { throw APIError(.badRequest, code: "invalid_field", message: "\(field) must not be empty.", field: field) }
            return s
        default:
            throw APIError(.badRequest, code: "invalid_field", message: "\(field) must be a string of at most \(TemplateRules.maxPartBytes / 1024) KiB.", field: field)
        }
    }

    static func templateName(_ name: String, field: String) throws {
        if let problem = TemplateRules.nameProblem(name) {
            throw APIError(.badRequest, code: "invalid_field", message: "\(field) is not a template name: \(problem); got \"\(name.prefix(64))\".", field: field)
        }
    }

    static func templateLocale(_ v: JSONValue?, field: String) throws -> String? {
        switch v {
        case nil, .null?: return nil
        case .string(let s)?:
            guard let locale = TemplateRules.normalizedLocale(s) else {
                throw APIError(.badRequest, code: "invalid_field", message: "\(field) must be a BCP 47 language tag such as en, fr or pt-BR; got \"\(s.prefix(40))\".", field: field)
            }
            return locale
        default: throw APIError(.badRequest, code: "invalid_field", message: "\(field) must be a string such as en or pt-BR.", field: field)
        }
    }

    static func templateVersion(_ v: JSONValue?, field: String) throws -> Int? {
        switch v {
        case nil, .null?: return nil
        case .number(let n)? where n >= 1 && n <= 1e9 && n.rounded() == n: return Int(n)
        default: throw APIError(.badRequest, code: "invalid_field", message: "\(field) must be a whole number from 1 (a version of the template).", field: field)
        }
    }

    static func templateVariables(_ v: JSONValue?, field: String) throws -> [String: JSONValue] {
        switch v {
        case nil, .null?: return [:]
        case .object(let o)?: return o
        default: throw APIError(.badRequest, code: "invalid_field", message: "\(field) must be an object of the values the template uses.", field: field)
        }
    }

    // MARK: POST /api/v1/templates

    func saveTemplate(_ request: Request, keyID: String?) async throws -> Response {
        let library = try templateLibrary
        guard case .object(let o) = try await Self.jsonBody(request, limit: Self.maxTemplateBody) else {
            throw APIError(.badRequest, code: "invalid_body", message: "The body must be a JSON object with name, channel and body.")
        }
        try Self.allowFields(o, ["name", "channel", "body", "subject", "html", "locale"])
        guard case .string(let name)? = o["name"] else {
            throw APIError(.badRequest, code: "invalid_field", message: "name is required: 1 to 64 of a-z, 0-9, '.', '_', '-'.", field: "name")
        }
        try Self.templateName(name, field: "name")
        guard case .string(let c)? = o["channel"], let channel = MessageChannel(rawValue: c) else {
            throw APIError(.badRequest, code: "invalid_field", message: "channel is required: one of \(MessageChannel.allCases.map(\.rawValue).joined(separator: ", ")).", field: "channel")
        }
        let body = try Self.templatePart(o["body"], field: "body", required: true) ?? ""
        let subject = try Self.templatePart(o["subject"], field: "subject", required: false)
        let html = try Self.templatePart(o["html"], field: "html", required: false)
        if channel != .email {
            for (field, value) in [("subject", subject), ("html", html)] where value != nil {
                throw APIError(.badRequest, code: "invalid_field", message: "\(field) is for email templates only.", field: field)
            }
        }
        if let subject, subject.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\r\n" }) {
            throw APIError(.badRequest, code: "invalid_field", message: "subject must be one line (no CR or LF).", field: "subject")
        }
        let locale = try Self.templateLocale(o["locale"], field: "locale") ?? TemplateRules.defaultLocale
        if case .failure(let p) = TemplateRenderer.compile(subject: subject, body: body, html: html), case .invalidTemplate(let why, let part) = p {
            throw APIError(.badRequest, code: "invalid_template", message: "\(part) does not compile: \(why).", field: part)
        }
        // One channel per name: a message naming it must not change channel with the locale or the version.
        if let other = try await library.store.versions(name: name).first(where: { $0.channel != channel }) {
            throw APIError(.conflict, code: "template_channel_conflict", message: "Template \(name) is a \(other.channel.rawValue) template; a version for \(channel.rawValue) needs another name.", field: "channel")
        }
        let saved = try await library.save(TemplateDraft(name: name, channel: channel, locale: locale, subject: subject, body: body, html: html, createdAt: SystemTime.now(), keyID: keyID))
        return .json(Self.render(saved), status: .created)
    }

    // MARK: GET /api/v1/templates, GET and DELETE /api/v1/templates/{name}

    func listTemplates(_ request: Request) async throws -> Response {
        let library = try templateLibrary
        let q = request.uri.queryParameters
        try Query.allow(q, ["archived", "limit", "cursor"])
        var archived = false
        switch Query.string(q, "archived") {
        case nil, "false"?: break
        case "true"?: archived = true
        default: throw APIError(.badRequest, code: "invalid_parameter", message: "archived must be true or false.", field: "archived")
        }
        let limit = try Query.limit(q)
        var after: TemplateKey?
        if let cursor = Query.string(q, "cursor") {
            guard let key = TemplateKey(cursor: cursor) else {
                throw APIError(.badRequest, code: "invalid_parameter", message: "cursor must be a nextCursor of a previous page.", field: "cursor")
            }
            after = key
        }
        let items = try await library.store.latest(archived: archived, after: after, limit: limit)
        let next = items.count == limit ? items.last.map { TemplateKey(name: $0.name, locale: $0.locale).cursor } : nil
        return .json(Render.page(Page(items: items, nextCursor: next), Self.render))
    }

    func showTemplate(_ request: Request, _ name: String) async throws -> Response {
        try Query.allow(request.uri.queryParameters, [])
        let versions = try await templateLibrary.store.versions(name: name)
        guard let first = versions.first else { throw Self.noTemplate(name) }
        return .json(.object([
            "name": .string(first.name), "channel": .string(first.channel.rawValue), "archived": .bool(versions.allSatisfy(\.archived)),
            "locales": .array(Set(versions.map(\.locale)).sorted().map(JSONValue.string)), "versions": .array(versions.map(Self.render)),
        ]))
    }

    func archiveTemplate(_ name: String) async throws -> Response {
        let library = try templateLibrary
        guard !(try await library.store.versions(name: name)).isEmpty else { throw Self.noTemplate(name) }
        _ = try await library.archive(name: name)
        return Response(status: .noContent)
    }

    static func noTemplate(_ name: String) -> APIError {
        APIError(.notFound, code: "not_found", message: "No template is named \"\(name.prefix(64))\".", field: "name")
    }

    // MARK: POST /api/v1/templates/{name}/preview

    func previewTemplate(_ request: Request, _ name: String) async throws -> Response {
        let library = try templateLibrary
        guard case .object(let o) = try await Self.jsonBody(request, limit: Self.maxBodySize) else {
            throw APIError(.badRequest, code: "invalid_body", message: "The body must be a JSON object (variables, locale, version; all optional).")
        }
        try Self.allowFields(o, ["variables", "locale", "version"])
        let variables = try Self.templateVariables(o["variables"], field: "variables")
        let locale = try Self.templateLocale(o["locale"], field: "locale")
        let version = try Self.templateVersion(o["version"], field: "version")
        guard !(try await library.store.versions(name: name)).isEmpty else { throw Self.noTemplate(name) }
        switch try await renderTemplate(library, name: name, locale: locale, version: version, variables: variables, fields: (name: "name", variables: "variables")) {
        case .failure(let e): throw e
        case .success(let (t, r)):
            return .json(.object([
                "name": .string(t.name), "channel": .string(t.channel.rawValue), "locale": .string(t.locale), "version": .number(Double(t.version)),
                "subject": Render.optional(r.subject), "body": .string(r.body), "html": Render.optional(r.html),
            ]))
        }
    }

    /// Picks the version (``TemplateRules/select(_:locale:version:)``) and renders it: 422 `template_not_found`
    /// or `template_archived`, 400 `missing_variable` naming the variable.
    func renderTemplate(_ library: TemplateLibrary, name: String, locale: String?, version: Int?, variables: [String: JSONValue], fields: (name: String, variables: String)) async throws -> Result<(MessageTemplate, TemplateRenderer.Rendered), APIError> {
        let versions = try await library.versions(name: name)
        let template: MessageTemplate
        switch TemplateRules.select(versions, locale: locale, version: version) {
        case .failure(.notFound(let why)):
            return .failure(APIError(.unprocessableContent, code: "template_not_found", message: versions.isEmpty ? "No template is named \"\(name.prefix(64))\"." : why, field: fields.name))
        case .failure(.archived(let why)):
            return .failure(APIError(.unprocessableContent, code: "template_archived", message: why, field: fields.name))
        case .success(let t): template = t
        }
        switch library.render(template, variables: variables) {
        case .failure(.missingVariable(let variable, let part)):
            return .failure(APIError(.badRequest, code: "missing_variable", message: "Template \(name) v\(template.version) (\(template.locale)) uses {{\(variable)}} in its \(part), and \(fields.variables) has no \(variable).", field: "\(fields.variables).\(variable)"))
        case .failure(.invalidTemplate(let why, let part)):
            return .failure(APIError(.unprocessableContent, code: "invalid_template", message: "Template \(name) v\(template.version): \(part) does not compile: \(why).", field: fields.name))
        case .success(let r): return .success((template, r))
        }
    }

    // MARK: a message through a template

    /// The first step of admission: a message naming `data.templateId` gets the template's rendered text as
    /// `data.msg` (and `data.subject`, `data.html` for email), and keeps `templateId`, `variables`, the resolved
    /// `locale` and `templateVersion` in its data. Other bodies pass unchanged (validation judges them).
    func applyTemplate(_ body: JSONValue) async throws -> Result<JSONValue, APIError> {
        guard case .object(var top) = body, case .object(var data)? = top["data"] else { return .success(body) }
        guard let id = data["templateId"], id != .null else {
            for field in ["variables", "templateVersion", "locale"] where data[field] != nil {
                return .failure(APIError(.badRequest, code: "invalid_field", message: "data.\(field) is for a message through a template: it needs data.templateId.", field: "data.\(field)"))
            }
            return .success(body)
        }
        do {
            guard case .string(let name) = id else {
                throw APIError(.badRequest, code: "invalid_field", message: "data.templateId must be a string: the name of a template (POST /api/v1/templates).", field: "data.templateId")
            }
            try Self.templateName(name, field: "data.templateId")
            if data["msg"] != nil {
                throw APIError(.badRequest, code: "invalid_field", message: "data.msg and data.templateId exclude each other: the template makes the text.", field: "data.msg")
            }
            let variables = try Self.templateVariables(data["variables"], field: "data.variables")
            let locale = try Self.templateLocale(data["locale"], field: "data.locale")
            let version = try Self.templateVersion(data["templateVersion"], field: "data.templateVersion")
            // A body whose type is wrong is validation's to refuse, with its own message.
            guard case .string(let type)? = top["type"], let channel = MessageChannel(rawValue: type) else { return .success(body) }
            let library = try templateLibrary
            let chosen: (MessageTemplate, TemplateRenderer.Rendered)
            switch try await renderTemplate(library, name: name, locale: locale, version: version, variables: variables, fields: (name: "data.templateId", variables: "data.variables")) {
            case .failure(let e): return .failure(e)
            case .success(let r): chosen = r
            }
            let (template, rendered) = chosen
            guard template.channel == channel else {
                throw APIError(.unprocessableContent, code: "template_channel_mismatch", message: "Template \(name) is a \(template.channel.rawValue) template; this message is \(channel.rawValue).", field: "type")
            }
            for (field, part) in [("subject", rendered.subject), ("html", rendered.html)] where part != nil && data[field] != nil {
                throw APIError(.badRequest, code: "invalid_field", message: "data.\(field) and data.templateId exclude each other: template \(name) makes the \(field).", field: "data.\(field)")
            }
            data["msg"] = .string(rendered.body)
            if let s = rendered.subject { data["subject"] = .string(s) }
            if let h = rendered.html { data["html"] = .string(h) }
            data["locale"] = .string(template.locale)
            data["templateVersion"] = .number(Double(template.version))
            top["data"] = .object(data)
            return .success(.object(top))
        } catch let e as APIError {
            return .failure(e)
        }
    }
}
