import Foundation
import SwitchboardCore
@_exported import SwitchboardTestSupport
@testable import SwitchboardSQLite


@Sendable func wallClock() -> Timestamp {
    Timestamp(milliseconds: Int64(Date().timeIntervalSince1970 * 1000))
}

func sms(_ to: String = "+15551234567", msg: String = "hello") -> CommunicationRequest {
    CommunicationRequest(channel: .sms, from: "+15550000000", to: to, msg: msg)
}
