-- An uncaught runtime error (not raised by error()): indexing nil three calls
-- deep, with the traceback naming local functions, methods and fields.
local Account = {}
Account.__index = Account
function Account.new(owner) return setmetatable({ owner = owner }, Account) end
function Account:balance() return self.ledger.total end
local function report(acc) return "balance: " .. acc:balance() end
print("reporting")
print(report(Account.new("ann")))
